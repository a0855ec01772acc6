"""The command line: parse arguments, dispatch to `runner.verbs.*`, map errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TextIO

from runner.base.errors import ExitCode, RunnerError
from runner.platform.environment import Environment
from runner.platform.settings import DEBUG, LOG_FORMAT, Settings, argument_type

# verb -> (module under runner.verbs, one-line help). Modules are imported only when used,
# so `runner validate` never pays for what `runner run` needs.
VERBS = {
    "validate": "check step files against the schema and the semantic rules",
    "run": "run the named steps, or every step whose `on` matches the workflow",
    "plan": "print what `run` would do, running nothing",
    "test": "run steps against case folders and diff the results",
    "state": "inspect or repair a step's stored state",
    "rbac": "print the Pipeline rbac.permissions the steps' state stores need",
    "schema": "print the step file JSON Schema",
    "pipeline": "print the Kratix Pipeline (containers, secret env, rbac) that runs the steps",
    "templates": "list the StepTemplates in the steps folder with their params",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verb being run gets its arguments (and its module imported)."""
    chosen = _chosen_verb(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="runner",
        description="Declarative steps for Kratix Promise workflows.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--steps-dir", help="the steps folder (default: $RUNNER_STEPS_DIR, /steps.d, ./steps.d)"
    )
    common.add_argument(
        "--log-format",
        type=argument_type(LOG_FORMAT),
        metavar="text|json",
        help="one JSON object per log line with json (default: $RUNNER_LOG_FORMAT, else text)",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for verb, help_text in VERBS.items():
        sub = subparsers.add_parser(verb, help=help_text, description=help_text, parents=[common])
        if verb == chosen:
            _module(verb).add_arguments(sub)
    return parser


def _chosen_verb(argv: Sequence[str]) -> str | None:
    """The verb on the command line, so that only its module is imported (start-up time)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _module(verb: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"runner.verbs.{verb}")


def _version() -> str:
    from runner import __version__

    return __version__


def report(exc: RunnerError, log_format: str, stderr: TextIO) -> None:
    """A user-facing error: `FILE:LINE:COL: PATH: message` lines, or JSON log records; masked,
    since a message may quote a value read from a command's output."""
    from runner.platform.masking import session_masker

    masker = session_masker()
    if log_format == "json":
        from runner.platform.log import Logger

        log = Logger("json", masker, stream=stderr)
        for problem in exc.problems:
            log.error(
                problem.message,
                file=problem.file,
                line=problem.line,
                column=problem.col,
                path=problem.path or None,
                hint=problem.hint,
                exit_code=int(exc.exit_code),
            )
        return
    for problem in exc.problems:
        text = masker.mask(problem.format())
        print(text if problem.file else f"runner: {text}", file=stderr)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one command line (default: the process's) in `env` (default: the process's)."""
    env = env or Environment.from_process()
    args = argparse.Namespace()
    settings: Settings | None = None
    try:
        args = _parse(argv, env)
        args.command_line = main  # how `runner test` runs each case's `runner run`, in process
        settings = _settings(args, env.environ)
        return int(_module(args.verb).main(args, env))
    except RunnerError as exc:
        report(exc, (settings or _fallback_settings(args, env.environ)).log_format, env.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `runner plan | head`
        return int(ExitCode.OK)
    except Exception as exc:  # a bug of ours: one line asking for a report, never a traceback
        settings = settings or _fallback_settings(args, env.environ)
        report_internal_error(exc, settings.log_format, settings.debug, env.stderr)
        return int(ExitCode.INTERNAL)


def _parse(argv: Sequence[str] | None, env: Environment) -> argparse.Namespace:
    """The parsed command line; argparse's usage, help and version text go to `env`'s streams
    (it writes to `sys.stdout`/`sys.stderr` only)."""
    with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):
        return build_parser(argv).parse_args(argv)


def _settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """The settings from the environment, with the command line's options over them; set on
    `args` (`args.settings`, and `args.log_format` resolved) for the commands."""
    settings = Settings.from_environ(environ)
    overrides = {
        name: getattr(args, name)
        for name in ("log_format", "lock_wait")
        if getattr(args, name, None) is not None
    }
    settings = replace(settings, **overrides)
    args.settings = settings
    args.log_format = settings.log_format
    return settings


def _fallback_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """How to report when the settings could not be read: each usable one, else its default."""
    log_format = getattr(args, "log_format", None) or LOG_FORMAT.read_or_default(environ)
    return Settings(log_format=log_format, debug=DEBUG.read_or_default(environ))


def report_internal_error(exc: BaseException, log_format: str, debug: bool, stderr: TextIO) -> None:
    """One masked line (or JSON record) on stderr; with RUNNER_DEBUG, the masked traceback."""
    from runner.platform.masking import session_masker

    masker = session_masker()
    message = " ".join(masker.mask(str(exc)).split()) or "(no message)"
    after = "the traceback follows" if debug else "run with RUNNER_DEBUG=1 for the traceback"
    text = (
        f"internal error: {type(exc).__name__}: {message} — this is a bug in runner "
        f"{_version()}; please report it to the kratix-step-runner maintainers ({after})"
    )
    if log_format == "json":
        from runner.platform.log import Logger

        Logger("json", masker, stream=stderr).error(text, exit_code=int(ExitCode.INTERNAL))
    else:
        print(f"runner: {text}", file=stderr)
    if debug:
        import traceback

        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(masker.mask(trace), end="", file=stderr)


def console() -> None:
    """The `runner` program: `main`, then exit without tearing down every loaded module.

    Interpreter shutdown costs about 40 ms with the Kubernetes client loaded, paid by every
    pipeline pod. Everything the runner writes is closed by then; only stdio needs a flush.
    """
    env = Environment.from_process()
    code = main(env=env)
    for stream in (env.stdout, env.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader went away (`runner plan | head`): nothing left to tell it
    os._exit(code)
