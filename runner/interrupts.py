"""A signal that stops the run, recorded here and acted on at the run's next safe point.

A signal handler that raises can land anywhere: between taking a Lease and the `try` that
releases it, and the next run then waits for the Lease to expire. So the handler only records
the signal; what waits (for a lock) or restores checks the record where stopping leaves nothing
behind, and raises Interrupted there. Signals are delivered to the process, so the record is
the process's too: the stores' wait loops see it without every store passing it on.

Recording is one assignment, safe in a signal handler (no lock, unlike threading.Event.set,
which could deadlock against the main thread it interrupted); waits sleep in short slices so
that they notice promptly.
"""

from __future__ import annotations

import time

from runner.errors import Interrupted

SLICE_SECONDS = 0.05  # how soon a wait notices a signal

_received: list[int] = []  # the signals received, in order


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


def forget() -> None:
    """Clear the record (for tests that run in one process)."""
    _received.clear()
