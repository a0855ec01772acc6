"""A `coordination.k8s.io/v1` Lease as the lock of one state.

Acquire: read the Lease; take it when it is free, ours, or expired (renewTime +
leaseDurationSeconds in the past: its holder stopped renewing, e.g. a killed pod), writing
with the resourceVersion read so two runs can't both win. While held, it is renewed and may
be lost as every RenewedLock (runner/state/lock.py). Release clears the holder.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.base.errors import RunnerError
from runner.state.base import NotFound
from runner.state.kubeapi import Conflict, Kube, NoAnswer
from runner.state.lock import RenewedLock, release_bound

if TYPE_CHECKING:
    from runner.platform.log import Logger


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


def holder_identity(environ: Mapping[str, str]) -> str:
    """The pod's name (Kubernetes sets HOSTNAME to it), made unique per process."""
    pod = environ.get("POD_NAME") or environ.get("HOSTNAME") or os.uname().nodename
    return f"{pod}/{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseLock(RenewedLock):
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
        super().__init__(f"Lease {namespace}/{name}", duration, log, step)
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.labels = labels
        self._lease: dict[str, Any] | None = None
        self._mutex = threading.Lock()  # one request on the Lease at a time

    def held(self) -> bool:
        return self._lease is not None

    # -- acquire -----------------------------------------------------------------------------
    def _try_acquire(self) -> tuple[str | None, float | None]:
        """(None, None) when we now hold it; else (holder, seconds until it expires)."""
        now = time.time()
        self.renewed(time.monotonic())  # the renewTime a win writes
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
                except NoAnswer:
                    return self._ours_after_no_answer()
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
            except NoAnswer:
                return self._ours_after_no_answer()

    def _ours_after_no_answer(self) -> tuple[str | None, float | None]:
        """A take whose every attempt went unanswered may have landed: the Lease names this
        run (its identity is unique to the process) if it did. Raise NoAnswer if it didn't."""
        lease = self.kube.get("leases", self.namespace, self.name)
        if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            self._lease = lease
            return None, None
        raise NoAnswer(f"the Kubernetes API did not answer taking {self.describe()}")

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
    def renew(self) -> None:
        with self._mutex:
            if self._lease is None or self.lost:
                return
            stamped = time.monotonic()
            body = dict(self._lease)
            stamp = micro_time()
            body["spec"] = {**self._lease["spec"], "renewTime": stamp}
            try:
                self._lease = self.kube.replace("leases", self.namespace, self.name, body)
                self.renewed(stamped)
            except (Conflict, NotFound, NoAnswer):
                # Another write in between, or ours landed with its answer lost: read back.
                current = self.kube.get("leases", self.namespace, self.name)
                spec = (current or {}).get("spec") or {}
                holder = spec.get("holderIdentity")
                if holder != self.identity:
                    self.lose(f"{holder} took it" if holder else "it was released or deleted")
                elif current is not None:
                    self._lease = current
                    if spec.get("renewTime") == stamp:
                        self.renewed(stamped)  # our renewal landed unanswered

    # -- release -------------------------------------------------------------------------------
    def release(self) -> None:
        """Free the Lease, best effort and in bounded time (RELEASE_SECONDS, less after a
        signal): if the API doesn't answer, the Lease expires on its own."""
        bound = release_bound()
        end = time.monotonic() + bound
        self.stop_renewing()
        # The renewer may be stuck in a request that holds the mutex: don't wait past `end`.
        if not self._mutex.acquire(timeout=bound):
            return
        try:
            if self._lease is None or self.lost:
                return

            def left() -> float:
                return max(0.01, end - time.monotonic())

            name = self.name
            try:
                try:
                    freed = self._freed(self._lease)
                    self.kube.replace("leases", self.namespace, name, freed, within=left())
                except (Conflict, NoAnswer):
                    # Our last renewal may have landed unanswered (a newer resourceVersion), or
                    # this release did: read back, and free it once more if it is still ours.
                    current = self.kube.get("leases", self.namespace, name, within=left())
                    holder = ((current or {}).get("spec") or {}).get("holderIdentity")
                    if current is not None and holder == self.identity:
                        freed = self._freed(current)
                        self.kube.replace("leases", self.namespace, name, freed, within=left())
            except (Conflict, RunnerError):
                pass  # it expires on its own; never fail a finished run over a release
            self._lease = None
        finally:
            self._mutex.release()

    @staticmethod
    def _freed(lease: dict[str, Any]) -> dict[str, Any]:
        body = dict(lease)
        body["spec"] = {**lease["spec"], "holderIdentity": None, "renewTime": micro_time()}
        return body
