"""Running a case's process with a timeout it can stop cleanly on, and stopping every process
under way when `runner test` itself is interrupted."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from dataclasses import dataclass

# After SIGTERM, how long a run gets to stop its command and save its state before SIGKILL.
STOP_GRACE = 15.0

# The processes under way, so an interrupted `runner test` can stop them (see stop_all).
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True)
class Finished:
    exit_code: int | None  # None when it timed out
    stdout: str
    stderr: str


def run(argv: list[str], env: dict[str, str], timeout: float) -> Finished:
    """Run argv; on timeout it gets SIGTERM (the runner forwards it to its command, which runs
    in a process group of its own) and, if it hasn't stopped within STOP_GRACE, SIGKILL."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    with _running_lock:
        _running.add(process)
    try:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = _stop(process)
            return Finished(None, _text(out), _text(err))
        except BaseException:
            _stop(process)
            raise
        return Finished(process.returncode, _text(out), _text(err))
    finally:
        with _running_lock:
            _running.discard(process)


def _stop(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        return process.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def stop_all() -> None:
    """SIGTERM every process under way (when `runner test` itself is interrupted)."""
    with _running_lock:
        running = list(_running)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
