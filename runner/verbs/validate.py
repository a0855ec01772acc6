"""`runner validate [PATH...]`: every problem of every step file, in one run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runner.base.errors import ExitCode, InvalidError, Problem
from runner.base.words import display
from runner.platform.environment import Environment
from runner.stepfile.loader import default_steps_dir, load_steps
from runner.stepfile.stamp import write_stamp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="step files or folders (default: the steps folder)"
    )
    parser.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default="text",
        help="json: a machine-readable report; github: GitHub Actions error annotations",
    )
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="when valid, record it in FOLDER/.runner-validated so runs skip these checks "
        "(for image builds; one folder only)",
    )


def main(args: argparse.Namespace, env: Environment) -> int:
    paths = [Path(p) for p in args.paths] or [default_steps_dir(args.steps_dir, env.environ)]
    if args.stamp and (len(paths) != 1 or not paths[0].is_dir()):
        raise InvalidError("--stamp needs exactly one steps folder")
    result = load_steps(paths, require_steps=True)
    code = ExitCode.INVALID if result.problems else ExitCode.OK
    if args.stamp and not result.problems:
        from runner.stepfile.index import build_index

        on = {s.name: s.document.value["spec"].get("on") for s in result.steps}
        stamp = write_stamp(paths[0], build_index(paths[0], result.files, on))
        print(f"recorded the valid files in {display(stamp)}", file=env.stderr)
    if args.format == "json":
        report = {
            "valid": not result.problems,
            "files": [display(f) for f in result.files],
            "steps": [
                {
                    "name": s.name,
                    "file": s.document.file,
                    "line": s.document.position(("metadata", "name"))[0],
                }
                for s in result.steps
            ],
            "templates": [
                {
                    "name": t.name,
                    "file": t.doc.file,
                    "line": t.doc.position(("metadata", "name"))[0],
                }
                for t in result.templates
            ],
            "problems": [p.as_dict() for p in result.problems],
        }
        json.dump(report, env.stdout, indent=2)  # ASCII: file names may not be UTF-8
        env.stdout.write("\n")
        return int(code)
    if args.format == "github":
        for problem in result.problems:
            print(github_annotation(problem), file=env.stdout)
    else:
        for problem in result.problems:
            print(problem.format(), file=env.stderr)
    files = _count(len(result.files), "file")
    if result.problems:
        print(
            f"invalid: {_count(len(result.problems), 'problem')} ({files} checked)",
            file=env.stderr,
        )
    else:
        templates = f" and {_count(len(result.templates), 'template')}" if result.templates else ""
        print(f"ok: {_count(len(result.steps), 'step')}{templates} in {files}", file=env.stdout)
    return int(code)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def github_annotation(problem: Problem) -> str:
    """`::error file=F,line=L,col=C,title=runner validate::PATH: message`, escaped as the
    Actions toolkit does: the hint, when there is one, is the message's second line."""
    where = {"file": problem.file, "line": problem.line, "col": problem.col} if problem.file else {}
    listed = [f"{key}={_escape_property(str(value))}" for key, value in where.items() if value]
    listed.append("title=runner validate")
    message = f"{problem.path}: {problem.message}" if problem.path else problem.message
    if problem.hint:
        message += f"\nhint: {problem.hint}"
    return f"::error {','.join(listed)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
