"""A signal that stops the run, recorded here and acted on at the run's next safe point.

A signal handler that raises can land anywhere: between taking a Lease and the `try` that
releases it, and the next run then waits for the Lease to expire. So the handler only records
the signal; what waits (for a lock) or restores checks the record where stopping leaves nothing
behind, and raises Interrupted there. Signals are delivered to the process, so the record is
the process's too: the stores' wait loops see it without every store passing it on.

Recording is one assignment, safe in a signal handler (no lock, unlike threading.Event.set,
which could deadlock against the main thread it interrupted); waits sleep in short slices so
that they notice promptly.

Waits on the Kubernetes API (a request's answer, a retry's backoff) can't stop at once: a
save in progress should finish, so that the state the commands wrote is kept. They get one
grace period (`RUNNER_KILL_GRACE`, at least 1 s) from the moment the first of them notices
the signal (`api_deadline`), then raise Interrupted: an API that hangs can't keep a stopped
run (and its lock) alive past the pod's own grace period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from runner.base.errors import Interrupted

SLICE_SECONDS = 0.05  # how soon a wait notices a signal
MIN_API_GRACE = 1.0  # what API waits get after a signal even with RUNNER_KILL_GRACE=0

_received: list[int] = []  # the signals received, in order
_api_deadline: list[float] = []  # when API waits give up, once one has noticed a signal


def record(signum: int) -> None:
    """Note a signal (from a signal handler)."""
    _received.append(signum)


def received() -> int | None:
    """The last signal received (the one the exit code tells), or None."""
    return _received[-1] if _received else None


def stop_if_received() -> None:
    """Raise Interrupted if a signal was received: call where stopping leaves nothing behind."""
    signum = received()
    if signum is not None:
        raise Interrupted(signum)


def pause(seconds: float) -> None:
    """Sleep `seconds` (a wait loop's pause), raising Interrupted as soon as a signal came."""
    deadline = time.monotonic() + seconds
    while True:
        stop_if_received()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLICE_SECONDS))


def api_deadline(grace: float) -> float | None:
    """None while no signal came; else the time.monotonic() by which waits on the API give up:
    `grace` seconds (at least MIN_API_GRACE) after the first wait of the main thread that
    noticed the signal. (A background thread's wait, a lock's renewal, doesn't start the
    clock: the save after a command's own grace period would find it spent.)"""
    if not _received:
        return None
    if _api_deadline:
        return _api_deadline[0]
    deadline = time.monotonic() + max(grace, MIN_API_GRACE)
    if threading.current_thread() is threading.main_thread():
        _api_deadline.append(deadline)
    return deadline


def on_thread(send: Callable[[], Any], check: Callable[[], None], name: str) -> Any:
    """What `send()` returns (or raises), run on a daemon thread and awaited in slices, calling
    `check()` before and between them: a blocking request (a socket, a call into a native
    client that holds the main thread) can't delay a signal, since `check` may raise (a
    deadline, Interrupted) and leave the request to its thread."""
    check()
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append((True, send()))
        except BaseException as exc:  # handed to the waiting thread
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=work, name=name, daemon=True).start()
    while not done.wait(SLICE_SECONDS):
        check()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def forget() -> None:
    """Clear the record (for tests that run in one process)."""
    _received.clear()
    _api_deadline.clear()
