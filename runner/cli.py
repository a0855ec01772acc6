"""The command line: parse arguments, dispatch to `runner.commands.*`, map errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace

from runner.errors import ExitCode, RunnerError
from runner.settings import DEBUG, LOG_FORMAT, Settings, argument_type

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
    return importlib.import_module(f"runner.commands.{verb}")


def _version() -> str:
    from runner import __version__

    return __version__


def report(exc: RunnerError, log_format: str) -> None:
    """A user-facing error: `FILE:LINE:COL: PATH: message` lines, or JSON log records."""
    if log_format == "json":
        from runner.log import Logger

        log = Logger("json")
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
        print(problem.format() if problem.file else f"runner: {problem.format()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.Namespace()
    settings: Settings | None = None
    try:
        args = build_parser(argv).parse_args(argv)
        settings = _settings(args, os.environ)
        return int(_module(args.verb).main(args))
    except RunnerError as exc:
        report(exc, (settings or _fallback_settings(args)).log_format)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `runner plan | head`
        return int(ExitCode.OK)
    except Exception as exc:  # a bug of ours: one line asking for a report, never a traceback
        settings = settings or _fallback_settings(args)
        report_internal_error(exc, settings.log_format, settings.debug)
        return int(ExitCode.INTERNAL)


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


def _fallback_settings(args: argparse.Namespace) -> Settings:
    """How to report when the settings could not be read: each usable one, else its default."""
    log_format = getattr(args, "log_format", None) or LOG_FORMAT.read_or_default(os.environ)
    return Settings(log_format=log_format, debug=DEBUG.read_or_default(os.environ))


def report_internal_error(exc: BaseException, log_format: str, debug: bool) -> None:
    """One masked line (or JSON record) on stderr; with RUNNER_DEBUG, the masked traceback."""
    from runner.masking import session_masker

    masker = session_masker()
    message = " ".join(masker.mask(str(exc)).split()) or "(no message)"
    after = "the traceback follows" if debug else "run with RUNNER_DEBUG=1 for the traceback"
    text = (
        f"internal error: {type(exc).__name__}: {message} — this is a bug in runner "
        f"{_version()}; please report it to the kratix-step-runner maintainers ({after})"
    )
    if log_format == "json":
        from runner.log import Logger

        Logger("json", masker).error(text, exit_code=int(ExitCode.INTERNAL))
    else:
        print(f"runner: {text}", file=sys.stderr)
    if debug:
        import traceback

        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(masker.mask(trace), end="", file=sys.stderr)


def console() -> None:
    """The `runner` program: `main`, then exit without tearing down every loaded module.

    Interpreter shutdown costs about 40 ms with the Kubernetes client loaded, paid by every
    pipeline pod. Everything the runner writes is closed by then; only stdio needs a flush.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader went away (`runner plan | head`): nothing left to tell it
    os._exit(code)
