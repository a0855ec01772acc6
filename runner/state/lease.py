"""A `coordination.k8s.io/v1` Lease as the lock of one state.

Acquire: read the Lease; take it when it is free, ours, or expired (renewTime +
leaseDurationSeconds in the past: its holder stopped renewing, e.g. a killed pod), writing
with the resourceVersion read so two runs can't both win. While held, a thread renews it
every third of the duration. Release clears the holder. The lock is lost when a renewal finds
another holder, or when no renewal succeeded for a whole duration (the API refused or failed
them, or the renewer itself failed): from then on another run may take it. `lost` says so, and
the store refuses to save over what the other run may have saved.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.errors import LockHeld, RunnerError, StoreError
from runner.settings import format_duration
from runner.state.base import HeldLock, NotFound, WaitNotice
from runner.state.kube import Conflict, Kube

if TYPE_CHECKING:
    from runner.log import Logger


def micro_time(moment: float | None = None) -> str:
    """MicroTime as the API server wants it: exactly six fractional digits and Z."""
    when = datetime.fromtimestamp(time.time() if moment is None else moment, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LeaseLock(HeldLock):
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        duration: int,
        labels: dict[str, str],
        log: Logger | None = None,
        step: str = "",
    ) -> None:
        super().__init__(f"Lease {namespace}/{name}")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.labels = labels
        self.log = log  # where waiting, and losing the lock, are told
        self.step = step
        self.lost_because: str | None = None  # set once, when the lock is lost
        self.renew_error: str | None = None  # the last renewal's failure, until one succeeds
        self._renewed = 0.0  # time.monotonic() of the renewTime last written
        self._lease: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._mutex = threading.Lock()  # one request on the Lease at a time
        self._losing = threading.Lock()

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        notice = WaitNotice(self.log, self.step, wait_seconds)
        pause = 0.2
        while True:
            holder, expires_in = self._try_acquire()
            if holder is None:
                self._start_renewing()
                return
            if time.monotonic() >= deadline:
                retry = max(5, min(int(expires_in) + 1, 300)) if expires_in is not None else 30
                raise LockHeld(
                    f"{self.describe()} is held by {holder} (another run on the same state); "
                    f"gave up after {format_duration(wait_seconds)}",
                    retry_after_seconds=retry,
                )
            notice(self.describe(), holder)
            time.sleep(
                min(pause * (0.5 + random.random()), max(0.0, deadline - time.monotonic())) or 0.01
            )
            pause = min(pause * 1.5, 2.0)

    def _try_acquire(self) -> tuple[str | None, float | None]:
        """(None, None) when we now hold it; else (holder, seconds until it expires)."""
        now, self._renewed = time.time(), time.monotonic()  # the renewTime a win writes
        with self._mutex:
            lease = self.kube.get("leases", self.namespace, self.name)
            if lease is None:
                try:
                    self._lease = self.kube.create(
                        "leases", self.namespace, self._body(now, transitions=0)
                    )
                    return None, None
                except Conflict:
                    return "another run", None  # it was created between our read and write
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
            duration = spec.get("leaseDurationSeconds") or self.duration
            expires_in = (renewed + duration - now) if renewed is not None else None
            free = (
                not holder
                or holder == self.identity
                or (expires_in is not None and expires_in <= 0)
            )
            if not free:
                return holder, expires_in
            transitions = int(spec.get("leaseTransitions") or 0) + (
                1 if holder and holder != self.identity else 0
            )
            body = self._body(now, transitions)
            body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
            try:
                self._lease = self.kube.replace("leases", self.namespace, self.name, body)
                return None, None
            except Conflict:
                return holder or "another run", expires_in

    def _body(self, now: float, transitions: int) -> dict[str, Any]:
        stamp = micro_time(now)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }

    # -- renew -------------------------------------------------------------------------------
    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                self.renew()
            except Exception as exc:  # any failure: a dead renewer would let the lease lapse
                self.renew_error = _reason(exc)
            if self.lost:
                return

    def renew(self) -> None:
        with self._mutex:
            if self._lease is None or self.lost:
                return
            stamped = time.monotonic()
            body = dict(self._lease)
            body["spec"] = {**self._lease["spec"], "renewTime": micro_time()}
            try:
                self._lease = self.kube.replace("leases", self.namespace, self.name, body)
                self._renewed, self.renew_error = stamped, None
            except (Conflict, NotFound):
                current = self.kube.get("leases", self.namespace, self.name)
                holder = ((current or {}).get("spec") or {}).get("holderIdentity")
                if holder != self.identity:
                    self._lose(f"{holder} took it" if holder else "it was released or deleted")
                elif current is not None:
                    self._lease = current

    @property
    def lost(self) -> bool:
        """True once another run holds the Lease, or may: it went a whole duration unrenewed."""
        if self.lost_because is None and self._lease is not None:
            unrenewed = time.monotonic() - self._renewed
            if unrenewed >= self.duration:
                why = f": {self.renew_error}" if self.renew_error else ""
                self._lose(f"not renewed for {format_duration(unrenewed)}{why}")
        return self.lost_because is not None

    def lost_reason(self) -> str | None:
        return self.lost_because if self.lost else None

    def _lose(self, because: str) -> None:
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

    # -- release -------------------------------------------------------------------------------
    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        with self._mutex:
            if self._lease is None or self.lost:
                return
            body = dict(self._lease)
            body["spec"] = {
                **self._lease["spec"],
                "holderIdentity": None,
                "renewTime": micro_time(),
            }
            try:
                self.kube.replace("leases", self.namespace, self.name, body)
            except (Conflict, NotFound, StoreError):
                pass  # it expires on its own; never fail a finished run over a release
            self._lease = None


def _reason(exc: Exception) -> str:
    """What went wrong, in one line: a store error's message, else the exception itself."""
    if isinstance(exc, RunnerError) and exc.problems:
        return exc.problems[0].message
    return f"{type(exc).__name__}: {exc}"
