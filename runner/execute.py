"""Running one command: argv only (never a shell), in its own process group, with its output
streamed line by line through the masker, a timeout, and signals forwarded.

Scripts are argv too: `bash -euo pipefail -c SCRIPT`, with inputs in the environment.

Waiting costs nothing per command: a reaper thread blocks in waitpid (through sh) and wakes
the main thread through a pipe the moment the command and its output are done; the main thread
sleeps in select() until then, or until the timeout or the kill deadline. A signal handler only
records the signal and writes to the same pipe (both async-signal-safe); the main thread
forwards it, exactly once, to the command's process group.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.log import Logger

# After SIGTERM, how long a command gets to finish (terraform writes its state on SIGTERM)
# before its process group is killed. `RUNNER_KILL_GRACE` (seconds) overrides it.
GRACE_SECONDS = 10.0
GRACE_ENV = "RUNNER_KILL_GRACE"

_STARTING = object()  # `_running` while a command is being started: a signal must not unwind us


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None when it never started; negative: killed by that signal
    duration: float
    timed_out: bool = False
    signalled: int | None = None  # the signal that stopped us, forwarded to the command
    error: str | None = None  # why it could not start, or its stdout could not be captured

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == 0
            and not self.timed_out
            and self.signalled is None
            and self.error is None
        )


def kill_grace(environ: Mapping[str, str]) -> tuple[float, str | None]:
    """The grace period from `RUNNER_KILL_GRACE`, and a warning when its value is unusable."""
    raw = environ.get(GRACE_ENV, "").strip()
    if not raw:
        return GRACE_SECONDS, None
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        return (
            GRACE_SECONDS,
            f"{GRACE_ENV}={raw!r} is not a number of seconds; using {GRACE_SECONDS:g}",
        )
    return value, None


class Executor:
    """Runs commands one at a time; `interrupt()` may be called from a signal handler."""

    def __init__(
        self,
        log: Logger,
        grace_seconds: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.log = log
        if grace_seconds is None:
            grace_seconds, warning = kill_grace(os.environ if environ is None else environ)
            if warning:
                log.warning(warning)
        self.grace_seconds = grace_seconds
        self._running: Any = None  # the running command (or _STARTING); read by the engine
        self.interrupted: int | None = None
        self._signals: list[int] = []  # every signal received, in order; appended by handlers
        self._wake_r = self._wake_w = -1  # the self-pipe, made on the first run

    def interrupt(self, signum: int) -> None:
        """Record a signal for the running command (from a signal handler: no locks here)."""
        self.interrupted = signum
        self._signals.append(signum)
        self._wake()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            # OSError: the pipe is full (a wake-up is pending anyway)
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float | None = None,
        stdout_file: Path | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Outcome:
        started = time.monotonic()
        self._running = _STARTING
        try:
            return self._run(argv, cwd, env, timeout, stdout_file, fields or {}, started)
        finally:
            self._running = None

    def _run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float | None,
        stdout_file: Path | None,
        fields: dict[str, Any],
        started: float,
    ) -> Outcome:
        import sh

        seen = len(self._signals)  # signals from here on are this command's to receive
        if self.interrupted is not None:
            return Outcome(None, 0.0, signalled=self.interrupted)
        program = _resolve(argv[0], cwd, env.get("PATH", ""))
        if program is None:
            return Outcome(None, 0.0, error=f"command not found: {argv[0]}")
        if not cwd.is_dir():
            return Outcome(None, 0.0, error=f"working folder does not exist: {cwd}")
        if self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        capture: IO[bytes] | None = None
        if stdout_file is not None:
            try:
                stdout_file.parent.mkdir(parents=True, exist_ok=True)
                capture = open(stdout_file, "wb")  # noqa: SIM115 - closed in the finally below
            except OSError as exc:
                return Outcome(
                    None, 0.0, error=f"cannot write {stdout_file}: {exc.strerror or exc}"
                )
        out_mask = self.log.masker.stream()
        err_mask = self.log.masker.stream()
        problems: list[str] = []

        # These run on sh's output thread. They must never raise: that thread would stop
        # reading, and a command writing into a full pipe would hang forever.
        def on_stdout(chunk: str) -> None:
            nonlocal capture
            if capture is not None:
                try:  # the file gets the real bytes; only the log is masked
                    capture.write(chunk.encode("utf-8", "surrogateescape"))
                except OSError as exc:
                    problems.append(f"cannot write {stdout_file}: {exc.strerror or exc}")
                    capture.close()
                    capture = None
            self._output("stdout", out_mask.feed(chunk), fields)

        def on_stderr(chunk: str) -> None:
            self._output("stderr", err_mask.feed(chunk), fields)

        finished: list[int] = []  # the exit status, once the command and its output are done
        try:
            with open(os.devnull, "rb") as stdin:
                process = sh.Command(program)(
                    *argv[1:],
                    _cwd=str(cwd),
                    _env=env,
                    _out=on_stdout,
                    _err=on_stderr,
                    _in=stdin,  # a real fd (dup'ed): EOF at once, and no stdin thread
                    _bg=True,
                    _bg_exc=False,
                    _new_session=True,  # its own process group, so a kill reaches its children
                    _no_out=True,
                    _no_err=True,
                    _tty_out=False,
                    _encoding="utf-8",
                    # Undecodable bytes survive the round trip: the stdout file gets them
                    # exactly, and a secret holding such bytes still matches the masker.
                    _decode_errors="surrogateescape",
                    _ok_code=list(range(256)),
                )
        except Exception as exc:  # sh raises OSError (and its own errors) when exec fails
            if capture is not None:
                capture.close()
            reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [repr(exc)])[0]
            error = f"cannot start {argv[0]}: {reason}"
            return Outcome(None, time.monotonic() - started, error=error)
        oproc = process.process
        pgid = oproc.pid  # _new_session: the command leads its own group
        self._running = process
        _drain(self._wake_r)
        threading.Thread(
            target=self._reap, args=(oproc, finished), name=f"reaper {pgid}", daemon=True
        ).start()

        timed_out = False
        killed = False
        deadline = started + timeout if timeout else None
        kill_at: float | None = None
        forwarded = seen
        try:
            while not finished:
                now = time.monotonic()
                while forwarded < len(self._signals):  # new signals: pass each on once
                    _kill_group(pgid, self._signals[forwarded])
                    forwarded += 1
                    if kill_at is None:
                        kill_at = now + self.grace_seconds
                if deadline is not None and not timed_out and now >= deadline:
                    timed_out = True
                    _kill_group(pgid, signal.SIGTERM)
                    if kill_at is None:
                        kill_at = now + self.grace_seconds
                if kill_at is not None and not killed and now >= kill_at:
                    killed = True
                    _kill_group(pgid, signal.SIGKILL)
                pending = (None if timed_out else deadline, None if killed else kill_at)
                wake_at = min((t for t in pending if t is not None), default=None)
                _sleep(self._wake_r, None if wake_at is None else max(0.0, wake_at - now))
            stopped = self.interrupted if forwarded > seen else None
            if timed_out or stopped is not None:
                # Whatever the command left behind in its group goes with it.
                _kill_group(pgid, signal.SIGKILL)
        finally:
            for stream_name, masker in (("stdout", out_mask), ("stderr", err_mask)):
                rest = masker.flush()
                if rest:
                    self._output(stream_name, rest if rest.endswith("\n") else rest + "\n", fields)
            if capture is not None:
                try:
                    capture.close()
                except OSError as exc:
                    problems.append(f"cannot write {stdout_file}: {exc.strerror or exc}")
        return Outcome(
            exit_code=finished[0],
            duration=time.monotonic() - started,
            timed_out=timed_out,
            signalled=stopped,
            error=problems[0] if problems else None,
        )

    def _reap(self, oproc: Any, finished: list[int]) -> None:
        """Wait for the command and its output (sh joins its reader), then wake the runner."""
        try:
            code = oproc.wait()
        except Exception:  # never leave the main thread waiting
            code = oproc.exit_code if oproc.exit_code is not None else -int(signal.SIGKILL)
        finished.append(int(code))
        self._wake()

    def _output(self, stream_name: str, text: str, fields: dict[str, Any]) -> None:
        if not text:
            return
        # A closed log stream must not stop the command's output being drained.
        with contextlib.suppress(Exception):
            self.log.output(stream_name, text, **fields)


def _sleep(fd: int, timeout: float | None) -> None:
    """Sleep until fd is readable (a wake-up) or timeout; signal handlers run meanwhile."""
    poller = select.poll()  # not select(): it fails on a descriptor numbered 1024 or more
    poller.register(fd, select.POLLIN)
    poller.poll(None if timeout is None else math.ceil(timeout * 1000))
    _drain(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)


def _resolve(program: str, cwd: Path, path: str) -> str | None:
    """Find the program as the command's own environment would (its PATH, its folder)."""
    if "/" in program:
        candidate = (cwd / program) if not os.path.isabs(program) else Path(program)
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    return shutil.which(program, path=path)
