"""User-facing errors: each carries where it happened and the exit code it maps to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (docs/cli.md#exit-codes)."""

    OK = 0
    COMMAND_FAILED = 1
    INVALID = 2
    STORE = 3
    INTERNAL = 4  # a bug: reported in one line, with the traceback only under RUNNER_DEBUG
    INTERRUPTED = 130
    TERMINATED = 143


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file or a request, with where it is.

    `path` is the document path (`spec.inputs.name.query`); `line`/`col` are 1-based.
    """

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    path: str = ""
    hint: str | None = None

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}:{self.col or 1}"
            where += ": "
        path = f"{self.path}: " if self.path else ""
        text = f"{where}{path}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.col,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class RunnerError(Exception):
    """Base of every error the CLI reports as a message rather than a traceback."""

    exit_code: ExitCode = ExitCode.INVALID

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem(p) for p in problems]
        super().__init__("\n".join(p.format() for p in self.problems))


class InvalidError(RunnerError):
    """A bad step file, request, secret or usage: nothing was run (exit 2)."""

    exit_code = ExitCode.INVALID


class CommandFailed(RunnerError):
    """A step's command failed (exit 1)."""

    exit_code = ExitCode.COMMAND_FAILED


class StoreError(RunnerError):
    """The state store or the cluster refused or failed (exit 3)."""

    exit_code = ExitCode.STORE


class LockHeld(StoreError):
    """Another run holds the state's lock; Kratix should retry later."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Interrupted(RunnerError):
    """The runner was stopped by a signal; the exit code is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = (
            ExitCode(128 + signum) if 128 + signum in (130, 143) else ExitCode.INTERRUPTED
        )
