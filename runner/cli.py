"""The command line: parse arguments, dispatch to `runner.commands.*`, map errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from runner.errors import ExitCode, RunnerError

# verb -> (module under runner.commands, one-line help). Modules are imported only when used,
# so `runner validate` never pays for what `runner run` needs.
VERBS = {
    "validate": "check step files against the schema and the semantic rules",
    "run": "run the named steps, or every step whose `on` matches the workflow",
    "plan": "print what `run` would do, running nothing",
    "test": "run steps against case folders and diff the results",
    "state": "inspect or repair a step's stored state",
    "rbac": "print the Pipeline rbac.permissions the steps' state stores need",
    "schema": "print the step file JSON Schema",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner",
        description="Declarative steps for Kratix Promise workflows.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--steps-dir", help="the steps folder (default: $RUNNER_STEPS_DIR, /steps.d, ./steps.d)")
    common.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("RUNNER_LOG_FORMAT", "text"))
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for verb, help_text in VERBS.items():
        sub = subparsers.add_parser(verb, help=help_text, description=help_text, parents=[common])
        _module(verb).add_arguments(sub)
    return parser


def _module(verb: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"runner.commands.{verb}")


def _version() -> str:
    from runner import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_module(args.verb).main(args))
    except RunnerError as exc:
        for problem in exc.problems:
            print(f"runner: {problem.format()}" if not problem.file else problem.format(), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `runner plan | head`
        return int(ExitCode.OK)
