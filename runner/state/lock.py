"""A lock that lapses unless renewed, for any store whose lock expires (a Lease, a row with a
deadline): a thread renews it every third of its duration, and it is lost when a renewal finds
another holder or when no renewal succeeded for a whole duration (the backend refused or failed
them, or the renewer itself failed). From then on another run may take it: `lost_reason()` says
so (the engine then refuses to save), and the run's log is told once.
"""

from __future__ import annotations

import abc
import random
import threading
import time
from typing import TYPE_CHECKING

from runner.base.errors import LockHeld, RunnerError
from runner.platform import interrupts
from runner.platform.settings import format_duration
from runner.state.base import HeldLock, WaitNotice

if TYPE_CHECKING:
    from runner.platform.log import Logger


RELEASE_SECONDS = 10.0  # the most a release waits for its backend; then the lock expires instead
RELEASE_AFTER_SIGNAL = 2.0  # ... once a signal came: the pod's grace period is short


def release_bound() -> float:
    """How long a lock's release may wait, best effort: the lock expires on its own."""
    return RELEASE_AFTER_SIGNAL if interrupts.received() is not None else RELEASE_SECONDS


class RenewedLock(HeldLock):
    def __init__(self, what: str, duration: float, log: Logger | None, step: str) -> None:
        super().__init__(what)
        self.duration = duration
        self.log = log  # where losing the lock is told
        self.step = step
        self.lost_because: str | None = None  # set once, when the lock is lost
        self.renew_error: str | None = None  # the last renewal's failure, until one succeeds
        self._renewed = 0.0  # time.monotonic() of the last successful (re)newal
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._losing = threading.Lock()

    @abc.abstractmethod
    def held(self) -> bool:
        """Whether this run took the lock (and has not released it)."""

    @abc.abstractmethod
    def renew(self) -> None:
        """Renew once: call `renewed(at)` on success, `lose(why)` when another run holds it
        now; raise when the backend fails (the renewer notes it and goes on)."""

    # A wait polls from about a fifth of a second, growing by half to this, with jitter so that
    # runs waiting together don't poll together.
    poll_max = 2.0

    def _try_acquire(self) -> tuple[str | None, float | None]:
        """(None, None) when this run now holds it; else (holder, seconds until it expires)."""
        raise NotImplementedError

    def acquire(self, wait_seconds: float) -> None:
        """Take the lock, waiting up to `wait_seconds` for another run's; LockHeld after that,
        with when to retry (its expiry)."""
        deadline = time.monotonic() + wait_seconds
        notice = WaitNotice(self.log, self.step, wait_seconds)
        pause = min(0.2, self.poll_max)
        while True:
            holder, expires_in = self._try_acquire()
            if holder is None:
                self.start_renewing()
                return
            if time.monotonic() >= deadline:
                retry = max(5, min(int(expires_in) + 1, 300)) if expires_in is not None else 30
                raise LockHeld(
                    f"{self.describe()} is held by {holder} (another run on the same state); "
                    f"gave up after {format_duration(wait_seconds)}",
                    retry_after_seconds=retry,
                )
            notice(self.describe(), holder)
            interrupts.pause(
                min(pause * (0.5 + random.random()), max(0.0, deadline - time.monotonic())) or 0.01
            )
            pause = min(pause * 1.5, self.poll_max)

    def renewed(self, at: float) -> None:
        """A renewal (or the acquisition) written at time.monotonic() `at` succeeded."""
        self._renewed, self.renew_error = at, None

    def start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lock-renewer", daemon=True)
        self._renewer.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                self.renew()
            except Exception as exc:  # any failure: a dead renewer would let the lock lapse
                self.renew_error = _reason(exc)
            if self.lost:
                return

    @property
    def lost(self) -> bool:
        """True once another run holds the lock, or may: it went a whole duration unrenewed."""
        if self.lost_because is None and self.held():
            unrenewed = time.monotonic() - self._renewed
            if unrenewed >= self.duration:
                why = f": {self.renew_error}" if self.renew_error else ""
                self.lose(f"not renewed for {format_duration(unrenewed)}{why}")
        return self.lost_because is not None

    def lost_reason(self) -> str | None:
        return self.lost_because if self.lost else None

    def lose(self, because: str) -> None:
        with self._losing:  # the renewer and the main thread may both find it lost
            if self.lost_because is not None:
                return
            self.lost_because = because
        if self.log is not None:
            self.log.warning(
                f"lost {self.describe()} ({because}); another run may take the state, so this "
                "run will not save it",
                step=self.step,
            )


def _reason(exc: Exception) -> str:
    """What went wrong, in one line: a store error's message, else the exception itself."""
    if isinstance(exc, RunnerError) and exc.problems:
        return exc.problems[0].message
    return f"{type(exc).__name__}: {exc}"
