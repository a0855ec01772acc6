"""Running one command: argv only (never a shell), in its own process group, with its output
streamed line by line through the masker, a timeout, and signals forwarded.

Scripts are argv too: `bash -euo pipefail -c SCRIPT`, with inputs in the environment.

The command is a plain `subprocess.Popen` (its own session, so its own process group; stdin
/dev/null; stdout and stderr pipes). The main thread alone does the work, asleep in poll()
over: the two output pipes, a self-pipe, and a pidfd of the command (Linux >= 5.3), which
becomes readable the moment the command exits. No thread, no SIGCHLD, no polling: waiting
costs nothing per command. Where pidfd_open is missing or refused (an old kernel, a seccomp
profile), a small reaper thread blocks in waitpid and then writes to the self-pipe instead.

Signals: the engine's handler calls `interrupt()`, which only records the signal and writes to
the self-pipe (both async-signal-safe: no locks, no logging). The main thread wakes up and
forwards each recorded signal, exactly once, to the command's process group; after the first
one the command has the grace period (`RUNNER_KILL_GRACE`) before the group gets SIGKILL. A
timeout sends SIGTERM to the group, then SIGKILL after the same grace. After a timeout or a
forwarded signal, whatever is left of the group is killed once the command has exited.

Output: bytes are read as they come, written unchanged to the stdout file (if any), decoded
incrementally as UTF-8 with surrogateescape (undecodable bytes survive, so a secret holding
them still matches), masked by a StreamMasker per stream, and logged a line at a time.

A command that exits while something it started in the background still holds its stdout or
stderr (`helper &`, a port-forward) must not hang the step: the runner reads for at most
`LINGER_SECONDS` more, then returns the command's outcome without waiting for that output to
end. On success the process group is left alone (a step may start a helper on purpose); only
a timeout or a forwarded signal kills what is left of it. The pipes are not closed either,
which would kill the helper with SIGPIPE at its next write: the executor keeps them, and
reads and logs (masked, with that command's fields) what the helper writes while later
commands run. Between commands and after the last one nobody reads: a helper that writes
more than a pipe holds (64 KiB) then waits, and when the runner exits its next write fails.
The pipes close when the helper exits. The stdout file holds what arrived before the
command's outcome was returned; later output only reaches the log. Helpers meant to outlive
their command are best started with their output redirected (`helper >/dev/null 2>&1 &`).

argv[0] reaches the program as written (as a shell passes it); the program itself is the one
found on the command's own PATH, or relative to its working folder.

It stays one module, past 400 lines: the poll loop, the pidfd/reaper fallback, the masking of
the streams and the signal forwarding share one command's state and must change together.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.platform.exec_limits import too_big
from runner.platform.log import Logger
from runner.platform.masking import MAX_PENDING, StreamMasker
from runner.platform.settings import KILL_GRACE

# How long output is still read after the command exits, when something it left running
# keeps its stdout or stderr open (see the module docstring).
LINGER_SECONDS = 0.2

_CHUNK = 64 * 1024  # a pipe's whole buffer in one read
_pidfd_works = hasattr(os, "pidfd_open")  # cleared on the first refusal (ENOSYS, EPERM)


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


class _Stream:
    """One output pipe of a command: its read end, decoder, masker and where it goes."""

    def __init__(self, fd: int, name: str, masker: StreamMasker, fields: dict[str, Any]) -> None:
        self.fd = fd
        self.name = name
        self.masker = masker
        self.fields = fields
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        # Masked text after the last newline, held until its line is whole (a list: a long
        # line in tiny pieces is then joined once, not once per piece).
        self.partial: list[str] = []
        self.held = 0  # characters in partial
        self.capture: IO[bytes] | None = None  # the stdout file, while it is being written
        self.capture_path: Path | None = None
        self.echo = True  # False: read (and captured) but never logged


class Executor:
    """Runs commands one at a time; `interrupt()` may be called from a signal handler."""

    def __init__(
        self,
        log: Logger,
        grace_seconds: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.log = log
        # After SIGTERM, how long a command gets to finish (terraform writes its state on
        # SIGTERM) before its process group is killed: `RUNNER_KILL_GRACE`, default 10s.
        if grace_seconds is None:
            grace_seconds = KILL_GRACE.default if environ is None else KILL_GRACE.read(environ)
        self.grace_seconds = grace_seconds
        self.interrupted: int | None = None
        self._signals: list[int] = []  # every signal received, in order; appended by handlers
        self._wake_r = self._wake_w = -1  # the self-pipe, made on the first run
        # Output pipes that earlier commands' background processes still hold open: read
        # (and logged) while later commands run, until they close.
        self._leftovers: list[_Stream] = []
        self._problems: list[str] = []  # the running command's capture errors

    def interrupt(self, signum: int) -> None:
        """Record a signal for the running command (from a signal handler: no locks here)."""
        self.interrupted = signum
        self._signals.append(signum)
        self._wake()

    def close(self) -> None:
        """Close the self-pipe and the pipes that background processes still hold: a process
        that runs many sessions (`runner test`) must not leak descriptors."""
        for stream in self._leftovers:
            if stream.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(stream.fd)
                stream.fd = -1
            self._close_capture(stream)
        self._leftovers.clear()
        wake_r, wake_w = self._wake_r, self._wake_w
        self._wake_r = self._wake_w = -1  # first: a signal handler's _wake() then writes nowhere
        for fd in (wake_r, wake_w):
            if fd >= 0:
                os.close(fd)

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
        stdin: bytes | None = None,
        echo: bool = True,
    ) -> Outcome:
        """Run argv to its end. `stdin`: written to its standard input (else it reads EOF);
        `echo=False`: its stdout goes only to `stdout_file`, never to the log."""
        started = time.monotonic()
        fields = fields or {}
        seen = len(self._signals)  # signals from here on are this command's to receive
        if self.interrupted is not None:
            return Outcome(None, 0.0, signalled=self.interrupted)
        program = _resolve(argv[0], cwd, env.get("PATH", ""))
        if program is None:
            return Outcome(None, 0.0, error=f"command not found: {argv[0]}")
        if not cwd.is_dir():
            return Outcome(None, 0.0, error=f"working folder does not exist: {cwd}")
        if (too_big_reason := too_big(argv, env)) is not None:  # else a bare E2BIG from exec
            return Outcome(None, 0.0, error=f"cannot start {argv[0]}: {too_big_reason}")
        if self._wake_r < 0:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        capture: IO[bytes] | None = None
        if stdout_file is not None:
            try:
                stdout_file.parent.mkdir(parents=True, exist_ok=True)
                capture = open(stdout_file, "wb")  # noqa: SIM115 - closed by _close_capture
            except OSError as exc:
                return Outcome(
                    None, 0.0, error=f"cannot write {stdout_file}: {exc.strerror or exc}"
                )

        # Our own pipes (not Popen's file objects): read ends that may outlive the Popen
        # when a background process keeps them open, and that nothing closes behind our back.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin is not None else (subprocess.DEVNULL, -1)
        try:
            process = subprocess.Popen(
                argv,
                executable=program,
                stdin=in_r,  # /dev/null (EOF at once) unless `stdin` is given
                stdout=out_w,
                stderr=err_w,
                cwd=cwd,
                env=env,
                close_fds=True,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
        except Exception as exc:  # OSError when exec fails; ValueError for a NUL in argv/env
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            if capture is not None:
                with contextlib.suppress(OSError):
                    capture.close()
            reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [repr(exc)])[0]
            error = f"cannot start {argv[0]}: {reason}"
            return Outcome(None, time.monotonic() - started, error=error)
        finally:
            os.close(out_w)  # the command has its copies; EOF comes when they all close
            os.close(err_w)
            if in_w >= 0:
                os.close(in_r)
        stdout = _Stream(out_r, "stdout", self.log.masker.stream(), fields)
        stderr = _Stream(err_r, "stderr", self.log.masker.stream(), fields)
        stdout.capture, stdout.capture_path = capture, stdout_file
        stdout.echo = echo
        feeder = _Feeder(in_w, stdin) if stdin is not None else None
        self._problems = []
        try:
            exit_code, timed_out, forwarded = self._wait(
                process, [stdout, stderr], timeout, seen, started, feeder
            )
        except BaseException:
            # Never leave a command running behind an error of ours.
            _kill_group(process.pid, signal.SIGKILL)
            process.wait()
            for stream in (stdout, stderr):
                self._finish_stream(stream)
            raise
        finally:
            if feeder is not None:
                feeder.close()
        stopped = self.interrupted if forwarded > seen else None
        for stream in (stdout, stderr):
            if stream.fd < 0:
                continue
            # Still open: a background process holds it. The command's outcome is known;
            # its stdout file is complete as far as the command goes.
            self._close_capture(stream)
            self._leftovers.append(stream)
        return Outcome(
            exit_code=exit_code,
            duration=time.monotonic() - started,
            timed_out=timed_out,
            signalled=stopped,
            error=self._problems[0] if self._problems else None,
        )

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        streams: list[_Stream],
        timeout: float | None,
        seen: int,
        started: float,
        feeder: _Feeder | None = None,
    ) -> tuple[int, bool, int]:
        """Stream the output until the command has exited and its pipes are closed (or have
        lingered for LINGER_SECONDS); forward signals, enforce the timeout and the grace.
        Returns (exit code, timed out, how many signals have been forwarded in all)."""
        global _pidfd_works
        pgid = process.pid  # start_new_session: the command leads its own group
        pidfd = -1
        finished: list[int] = []  # the exit status, set by the reaper thread (no pidfd)
        if _pidfd_works:
            try:
                # The command cannot have been reaped yet (only we wait for it), so the pid
                # is still its own.
                pidfd = os.pidfd_open(pgid)
            except OSError:
                _pidfd_works = False
        if pidfd < 0:
            threading.Thread(
                target=self._reap, args=(process, finished), name=f"reaper {pgid}", daemon=True
            ).start()

        poller = select.poll()  # not select(): it fails on a descriptor numbered 1024 or more
        poller.register(self._wake_r, select.POLLIN)
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        by_fd: dict[int, _Stream] = {}
        for stream in (*streams, *self._leftovers):
            poller.register(stream.fd, select.POLLIN)
            by_fd[stream.fd] = stream
        if feeder is not None:
            poller.register(feeder.fd, select.POLLOUT)

        deadline = started + timeout if timeout else None
        kill_at: float | None = None
        linger_until: float | None = None
        exit_code: int | None = None
        timed_out = killed = False
        forwarded = seen
        try:
            while True:
                now = time.monotonic()
                if exit_code is None and finished:
                    exit_code = finished[0]
                if exit_code is None:
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
                else:
                    if linger_until is None:
                        linger_until = now + LINGER_SECONDS
                        if timed_out or forwarded > seen:
                            # Whatever the command left behind in its group goes with it.
                            _kill_group(pgid, signal.SIGKILL)
                    if all(stream.fd < 0 for stream in streams) or now >= linger_until:
                        return exit_code, timed_out, forwarded
                    pending = (linger_until, None)
                wake_at = min((t for t in pending if t is not None), default=None)
                wait_ms = None
                if wake_at is not None:  # (capped: poll() takes a C int of milliseconds)
                    wait_ms = min(math.ceil(max(0.0, wake_at - now) * 1000), 3_600_000)
                for fd, _ in poller.poll(wait_ms):
                    if fd == self._wake_r:
                        _drain(fd)
                    elif fd == pidfd:
                        poller.unregister(pidfd)
                        exit_code = process.wait()  # it has exited: this does not block
                    elif feeder is not None and fd == feeder.fd:
                        if not feeder.write():
                            poller.unregister(fd)
                            feeder.close()
                    else:
                        stream = by_fd[fd]
                        if not self._read(stream):
                            poller.unregister(fd)
                            self._finish_stream(stream)
                            if stream in self._leftovers:
                                self._leftovers.remove(stream)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def _reap(self, process: subprocess.Popen[bytes], finished: list[int]) -> None:
        """Without a pidfd: wait for the command, then wake the main thread."""
        try:
            code = process.wait()
        except Exception:  # never leave the main thread waiting
            code = process.returncode if process.returncode is not None else -signal.SIGKILL
        finished.append(int(code))
        self._wake()

    def _read(self, stream: _Stream) -> bool:
        """Pass on what the pipe holds; False at end of file."""
        try:
            chunk = os.read(stream.fd, _CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        if stream.capture is not None:
            try:  # the file gets the real bytes; only the log is masked
                stream.capture.write(chunk)
            except OSError as exc:
                self._problems.append(f"cannot write {stream.capture_path}: {exc.strerror or exc}")
                with contextlib.suppress(OSError):
                    stream.capture.close()
                stream.capture = None
        self._lines(stream, stream.masker.feed(stream.decoder.decode(chunk)))
        return True

    def _finish_stream(self, stream: _Stream) -> None:
        """At end of file: close the pipe and the stdout file; log what was held back."""
        if stream.fd < 0:
            return
        os.close(stream.fd)
        stream.fd = -1
        self._close_capture(stream)
        rest = stream.masker.feed(stream.decoder.decode(b"", final=True)) + stream.masker.flush()
        self._lines(stream, rest, final=True)

    def _close_capture(self, stream: _Stream) -> None:
        if stream.capture is None:
            return
        try:
            stream.capture.close()
        except OSError as exc:
            self._problems.append(f"cannot write {stream.capture_path}: {exc.strerror or exc}")
        stream.capture = None

    def _lines(self, stream: _Stream, text: str, final: bool = False) -> None:
        """Log whole lines of (masked) text; hold a partial line for the rest of it, up to
        MAX_PENDING characters (a JSON log makes a record per piece it gets)."""
        if not final and "\n" not in text and stream.held + len(text) <= MAX_PENDING:
            if text:
                stream.partial.append(text)
                stream.held += len(text)
            return
        if stream.partial:
            text = "".join((*stream.partial, text))
        cut = len(text) if final else text.rfind("\n") + 1
        if len(text) - cut > MAX_PENDING:
            cut = len(text)
        rest = text[cut:]
        stream.partial = [rest] if rest else []
        stream.held = len(rest)
        if cut and stream.echo:
            whole = text[:cut]
            # The command's last line gets its newline; a long line's piece continues.
            self._output(stream, whole + "\n" if final and whole[-1] != "\n" else whole)

    def _output(self, stream: _Stream, text: str) -> None:
        # A closed log stream must not stop the command's output being drained.
        with contextlib.suppress(Exception):
            self.log.output(stream.name, text, **stream.fields)


class _Feeder:
    """A command's standard input, written as the pipe takes it (never blocking the loop)."""

    def __init__(self, fd: int, data: bytes) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._data = memoryview(data)

    def write(self) -> bool:
        """Write what the pipe takes now; False once all is written or the reader is gone."""
        try:
            self._data = self._data[os.write(self.fd, self._data[:_CHUNK]) :]
        except BlockingIOError:
            return True
        except OSError:  # EPIPE: the command closed its stdin without reading it all
            return False
        return bool(self._data)

    def close(self) -> None:
        """EOF for the command."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


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
    """Find the program as the command's own environment would (its PATH, its folder).

    Absolute, because the command starts in cwd: a relative PATH entry means the runner's.
    """
    if "/" in program:
        candidate = (cwd / program) if not os.path.isabs(program) else Path(program)
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    found = shutil.which(program, path=path)
    return None if found is None else os.path.abspath(found)
