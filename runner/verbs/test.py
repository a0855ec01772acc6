"""`runner test CASE_DIR...`: run steps against case folders and diff the results.

This module holds the options; the case format, the running, comparing and reporting live in
`runner.cases`, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runner.base.errors import ExitCode, InvalidError
from runner.platform.environment import Environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "cases", nargs="+", metavar="CASE_DIR",
        help="case folders (input/object.yaml, env, case.yaml, expected output/ and metadata/), "
        "or folders holding them",
    )  # fmt: skip
    parser.add_argument(
        "--update",
        action="store_true",
        help="rewrite the expected output/ and metadata/ from what the steps produced",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, metavar="N", help="run N cases at once (default 1)"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=600.0,
        metavar="DURATION",
        help="longest a case may run, e.g. 90s or 2m, unless its case.yaml says (default 600s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each case's results folder and print where"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the log of every case's run"
    )
    parser.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report (for CI)")
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: one machine-readable report on stdout, at the end",
    )
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the diffs (auto: on a terminal, unless NO_COLOR is set)",
    )


def main(args: argparse.Namespace, env: Environment) -> int:
    from runner.cases.report import choose_style
    from runner.cases.runcase import Options
    from runner.cases.suite import run_suite

    try:
        if args.jobs < 1:
            raise InvalidError("--jobs must be at least 1")
        passed = run_suite(
            args.cases,
            steps_dir=args.steps_dir,
            environ=env.environ,
            options=Options(update=args.update, keep=args.keep, timeout=args.timeout),
            jobs=args.jobs,
            style=choose_style(args.color, env.stdout, env.environ),
            verbose=args.verbose,
            junit=Path(args.junit) if args.junit else None,
            out=env.stdout,
            run=args.command_line,  # cli.main: each case's `runner run`, in this process
            fmt=args.format,
        )
    except InvalidError as exc:
        if args.format == "json":  # tools get a document either way; people get stderr
            report = {"passed": False, "problems": [p.as_dict() for p in exc.problems], "cases": []}
            env.stdout.write(json.dumps(report, indent=2) + "\n")
        raise
    return int(ExitCode.OK if passed else ExitCode.COMMAND_FAILED)


def _seconds(text: str) -> float:
    """`--timeout`: what case.yaml's `timeout` takes (imported only when given)."""
    from runner.cases.case_files import seconds_argument

    return seconds_argument(text)
