"""`runner test CASE_DIR...`: run steps against case folders and diff the results.

The case format and the running and comparing live in `runner.testcase`; this module parses the
options, runs the cases (in parallel with `--jobs`) and prints the report in case order.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from runner.errors import ExitCode, InvalidError, Problem


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
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="longest a case may run, unless its case.yaml says (default 600)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each case's results folder and print where"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the log of every case's run"
    )
    parser.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report (for CI)")
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the diffs (auto: on a terminal, unless NO_COLOR is set)",
    )


def main(args: argparse.Namespace) -> int:
    from runner import testcase as tc

    if args.jobs < 1:
        raise InvalidError("--jobs must be at least 1")
    paths, problems = tc.find_cases(args.cases)
    cases: list[tc.Case] = []
    for path in paths:
        try:
            cases.append(tc.load_case(path, args.steps_dir, os.environ))
        except InvalidError as exc:
            problems += exc.problems
    if problems:
        raise InvalidError(*problems, Problem("no case was run: fix the case folders above"))

    style = tc.Style(
        args.color == "always"
        or (args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    )
    options = tc.Options(update=args.update, keep=args.keep, timeout=args.timeout)
    results: list[tc.Result] = []
    # SIGTERM (a CI job cancelled) stops the runs like Ctrl-C does, rather than orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = [pool.submit(tc.run_case, case, options, os.environ) for case in cases]
        for future in futures:  # reported in the order given, as each becomes available
            result = future.result()
            results.append(result)
            print(tc.format_result(result, style, args.verbose), flush=True)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        tc.stop_all()  # the runs save their state and stop; their folders are removed
        pool.shutdown(wait=True)
        raise
    pool.shutdown()
    print(f"\n{tc.summary(results, style)}")
    if args.junit:
        tc.write_junit(Path(args.junit), results)
    return int(ExitCode.OK if all(r.passed for r in results) else ExitCode.COMMAND_FAILED)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
