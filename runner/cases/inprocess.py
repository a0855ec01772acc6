"""Running a case's `runner run` in this process: its command line through the same entry point
as the `runner` program (`cli.main`, handed down by the verb), so the same Session, the same
error reports and the same exit codes, with the case's environment and captured streams.

What a process has only one of, and how each case gets its own:
- `os.environ` and the current folder are never changed: the run reads the case's variables
  from its `Environment`, and its commands get them (TMPDIR too). What is written to
  `sys.stdout`/`sys.stderr` while the case runs (a library's warning) is the case's.
- The session masker (runner/platform/masking) is a fresh one while the case runs, and the one
  before it is put back afterwards: a case neither inherits another's secrets nor leaves its own.
  The run's masker comes back with its result: what the run learned is a secret (a state key, a
  value built from a sensitive output) is masked in what `runner test` shows and writes too.
- Signals: the record of those received (runner/platform/interrupts.py) is cleared before the
  case, and the SIGINT and SIGTERM handlers (the engine installs its own) are put back after
  it. A SIGINT or SIGTERM during a case stops it as it stops `runner run`, and then raises
  KeyboardInterrupt here: `runner test` stops too.
- The timeout is SIGALRM: at the case's timeout the run gets what `runner run` gets from a
  SIGTERM (the engine stops its command, saves and ends the step; a run that has not reached
  its commands is ended at once), and after STOP_GRACE more the run is ended wherever it is.

Signal handlers and the alarm belong to a process's main thread, so a process runs one case at
a time; `-j N` runs cases in forked processes (forked.py).
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from runner.platform import interrupts
from runner.platform.environment import Environment
from runner.platform.masking import Masker, set_session_masker

# After its timeout, how long a run gets to stop its command and save its state before it is
# ended where it is (the engine's own RUNNER_KILL_GRACE, 10s by default, fits in it).
STOP_GRACE = 15.0

# A command line run in process: `cli.main(argv, env)`, returning the exit code.
RunCommandLine = Callable[[Sequence[str], Environment], int]


@dataclass(frozen=True)
class Finished:
    exit_code: int | None  # None when it timed out
    stdout: str
    stderr: str
    masker: Masker = field(default_factory=Masker)  # the run's: every secret it learned


class CaseTimeout(BaseException):
    """The case's time and its grace are up: unwinds the run wherever it is. A BaseException,
    so that no `except Exception` of the run takes it for a bug of its own."""


def run_in_process(
    run: RunCommandLine,
    argv: Sequence[str],
    environ: dict[str, str],
    timeout: float,
    grace: float | None = None,
) -> Finished:
    """Run the command line `argv` in `environ`, ended at `timeout` and `grace` (default
    STOP_GRACE) after it (see the module's doc); KeyboardInterrupt when the run was stopped by
    a SIGINT or SIGTERM of ours."""
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(environ, io.StringIO(), stdout, stderr, _folder())
    deadline = _Deadline(timeout, STOP_GRACE if grace is None else grace)
    saved = _ProcessState(stdout, stderr)
    code: int | None = None
    interrupts.forget()
    try:
        try:
            try:
                saved.isolate()
                deadline.start()
                code = run(argv, env)
            except SystemExit as exc:  # argparse refusing the line, as `runner run` exits then
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            finally:
                deadline.stop()
                saved.restore()
        except CaseTimeout:
            deadline.stop()  # again: the alarm may have cut the first stop short
            saved.restore()
        interrupted = interrupts.received() is not None and not deadline.timed_out
    finally:
        interrupts.forget()  # the case's; `runner test` stops below if it was a user's
    if interrupted:
        raise KeyboardInterrupt
    exit_code = None if deadline.timed_out else code
    return Finished(exit_code, stdout.getvalue(), stderr.getvalue(), saved.run_masker)


@contextmanager
def own_session_masker() -> Iterator[Masker]:
    """A fresh session masker for the block, the one before it put back after: what the block
    reads as a case's secret (a state key, while seeding) is masked in it, and nowhere else."""
    masker = Masker()
    previous = set_session_masker(masker)
    try:
        yield masker
    finally:
        set_session_masker(previous)


def _folder() -> Path:
    try:
        return Path.cwd()
    except OSError:
        return Path(os.curdir)


def _stop_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT or SIGTERM during a case, before the engine installs its own handler or after:
    the run ends as `runner run` would (exit 130), then `runner test` stops."""
    interrupts.record(signum)
    raise KeyboardInterrupt


class _ProcessState:
    """The process-wide state a run changes: the SIGINT and SIGTERM handlers, the session
    masker; and `sys.stdout`/`sys.stderr`, which the runner never writes but a library's warning
    might. `isolate` sets the case's own; `restore` puts back what was there (idempotent)."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self._streams = (stdout, stderr)
        self._handlers: dict[signal.Signals, Any] = {}
        self._masker: Masker | None = None
        self._saved_streams = (sys.stdout, sys.stderr)
        self._isolated = False
        self.run_masker = Masker()  # the session masker the run left, once restored

    def isolate(self) -> None:
        for stop in (signal.SIGINT, signal.SIGTERM):
            self._handlers[stop] = signal.getsignal(stop)
        self._masker = set_session_masker(Masker())
        self._saved_streams = (sys.stdout, sys.stderr)
        self._isolated = True
        sys.stdout, sys.stderr = self._streams
        for stop in self._handlers:
            signal.signal(stop, _stop_signal)

    def restore(self) -> None:
        if not self._isolated:
            return
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.run_masker = set_session_masker(self._masker) or self.run_masker
        sys.stdout, sys.stderr = self._saved_streams
        self._isolated = False


class _Deadline:
    """SIGALRM at `timeout`: the run is stopped as by a SIGTERM; `grace` later, ended."""

    def __init__(self, timeout: float, grace: float) -> None:
        self.timeout = max(timeout, 0.001)  # setitimer(0) would disarm it
        self.grace = max(grace, 0.001)
        self.timed_out = False
        self._stopped = False
        self._previous: Any = None

    def start(self) -> None:
        self._previous = signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)

    def stop(self) -> None:
        self._stopped = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._previous is not None:
            signal.signal(signal.SIGALRM, self._previous)
            self._previous = None

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._stopped:
            return
        if self.timed_out:  # the grace is over too: a run that does not stop is ended here
            raise CaseTimeout
        self.timed_out = True
        handler = signal.getsignal(signal.SIGTERM)
        if handler is _stop_signal or not callable(handler):
            raise CaseTimeout  # no engine under way: nothing to stop or save, end it now
        signal.setitimer(signal.ITIMER_REAL, self.grace)
        handler(signal.SIGTERM, frame)  # the engine's: stop the command, save, end the step
