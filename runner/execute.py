"""Running one command: argv only (never a shell), in its own process group, with its output
streamed line by line through the masker, a timeout, and signals forwarded.

Scripts are argv too: `bash -euo pipefail -c SCRIPT`, with inputs in the environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.log import Logger

# After SIGTERM, how long a command gets to finish (terraform writes its state on SIGTERM)
# before its process group is killed.
GRACE_SECONDS = 10.0
_POLL = 0.1


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None when it never started
    duration: float
    timed_out: bool = False
    signalled: int | None = None  # the signal that stopped us, forwarded to the command
    error: str | None = None  # why it could not start

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.signalled is None


class Executor:
    """Runs commands one at a time; `interrupt()` may be called from a signal handler."""

    def __init__(self, log: Logger, grace_seconds: float = GRACE_SECONDS) -> None:
        self.log = log
        self.grace_seconds = grace_seconds
        self._running: Any = None
        self.interrupted: int | None = None

    def interrupt(self, signum: int) -> None:
        """Forward a signal to the running command's process group (from a signal handler)."""
        self.interrupted = signum
        if self._running is not None:
            _signal_group(self._running, signum)

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float | None = None,
        stdout_file: Path | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Outcome:
        import sh

        started = time.monotonic()
        program = _resolve(argv[0], cwd, env.get("PATH", ""))
        if program is None:
            return Outcome(None, 0.0, error=f"command not found: {argv[0]}")
        if not cwd.is_dir():
            return Outcome(None, 0.0, error=f"working folder does not exist: {cwd}")
        fields = fields or {}
        out_mask = self.log.masker.stream()
        err_mask = self.log.masker.stream()
        capture: IO[str] | None = None
        if stdout_file is not None:
            stdout_file.parent.mkdir(parents=True, exist_ok=True)
            capture = open(stdout_file, "w", encoding="utf-8")

        def on_stdout(chunk: str) -> None:
            if capture is not None:
                capture.write(chunk)  # the file gets the real output; only the log is masked
            text = out_mask.feed(chunk)
            if text:
                self.log.output("stdout", text, **fields)

        def on_stderr(chunk: str) -> None:
            text = err_mask.feed(chunk)
            if text:
                self.log.output("stderr", text, **fields)

        finished = threading.Event()
        try:
            process = sh.Command(program)(
                *argv[1:],
                _cwd=str(cwd),
                _env=env,
                _out=on_stdout,
                _err=on_stderr,
                _in=os.devnull,
                _bg=True,
                _bg_exc=False,
                _new_session=True,  # its own process group, so a timeout kills its children too
                _no_out=True,
                _no_err=True,
                _tty_out=False,
                _decode_errors="replace",
                _ok_code=list(range(256)),
                _done=lambda *_: finished.set(),
            )
        except OSError as exc:
            if capture:
                capture.close()
            return Outcome(None, 0.0, error=f"cannot start {argv[0]}: {exc.strerror or exc}")
        self._running = process
        if self.interrupted is not None:  # a signal arrived while we were starting it
            _signal_group(process, self.interrupted)
        timed_out = False
        try:
            deadline = started + timeout if timeout else None
            signalled_at: float | None = None
            # Event.wait returns the moment the command ends (sh's own wait(timeout) polls
            # every 0.1 s, a delay paid per command), and lets signal handlers run meanwhile.
            while not finished.wait(_POLL):
                now = time.monotonic()
                if deadline is not None and now >= deadline and not timed_out:
                    timed_out = True
                    _signal_group(process, signal.SIGTERM)
                    signalled_at = now
                if self.interrupted is not None and signalled_at is None:
                    signalled_at = now
                if signalled_at is not None and now - signalled_at > self.grace_seconds:
                    _signal_group(process, signal.SIGKILL)
                    signalled_at = float("inf")
            code = _exit_code(process)
        finally:
            self._running = None
            for stream_name, masker in (("stdout", out_mask), ("stderr", err_mask)):
                rest = masker.flush()
                if rest:
                    self.log.output(stream_name, rest if rest.endswith("\n") else rest + "\n", **fields)
            if capture:
                capture.close()
        return Outcome(
            exit_code=code,
            duration=time.monotonic() - started,
            timed_out=timed_out,
            signalled=self.interrupted,
        )


def _exit_code(process: Any) -> int:
    """Collect the exit status (and join the output threads); a signal death is negative."""
    import sh

    try:
        process.wait()
    except sh.SignalException:
        pass
    return int(process.exit_code)


def _signal_group(process: Any, signum: int) -> None:
    try:
        process.signal_group(signum)
    except (ProcessLookupError, OSError):
        pass  # it already finished


def _resolve(program: str, cwd: Path, path: str) -> str | None:
    """Find the program as the command's own environment would (its PATH, its folder)."""
    if "/" in program:
        candidate = (cwd / program) if not os.path.isabs(program) else Path(program)
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    return shutil.which(program, path=path)
