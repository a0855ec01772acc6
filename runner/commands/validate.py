"""`runner validate [PATH...]`: every problem of every step file, in one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner.errors import ExitCode
from runner.spec.loader import default_steps_dir, load_steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="step files or folders (default: the steps folder)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="json: a machine-readable report")


def main(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [default_steps_dir(args.steps_dir)]
    result = load_steps(paths)
    code = ExitCode.INVALID if result.problems else ExitCode.OK
    if args.format == "json":
        report = {
            "valid": not result.problems,
            "files": len(result.files),
            "steps": [s.name for s in result.steps],
            "problems": [p.as_dict() for p in result.problems],
        }
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return int(code)
    for problem in result.problems:
        print(problem.format(), file=sys.stderr)
    if result.problems:
        print(f"{len(result.problems)} problem(s) in {len(result.files)} file(s)", file=sys.stderr)
    else:
        print(f"ok: {len(result.steps)} step(s) in {len(result.files)} file(s)")
    return int(code)
