"""The state store interface and what every store shares."""

from __future__ import annotations

import abc
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.settings import format_duration

if TYPE_CHECKING:
    from runner.log import Logger

MANAGED_BY = "kratix-step-runner"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
WAIT_NOTICE_SECONDS = 5.0  # how often a run waiting for a lock says so


@dataclass(frozen=True)
class StateRef:
    """Which state: the rendered name and namespace, and whose it is (for labels)."""

    step: str
    name: str
    namespace: str
    object_name: str | None = None
    object_namespace: str | None = None

    def labels(self) -> dict[str, str]:
        """Labels on every stored object, so operators can find and clean up state."""
        labels = {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "runner.kratix.dev/step": self.step,
        }
        if self.object_name:
            labels["runner.kratix.dev/object-name"] = label_value(self.object_name)
        if self.object_namespace:
            labels["runner.kratix.dev/object-namespace"] = label_value(self.object_namespace)
        return labels


def label_value(text: str) -> str:
    """A valid label value: at most 63 characters, alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9]+$", "", re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:63]).lstrip("-_.")


@dataclass(frozen=True)
class RbacRule:
    """One Pipeline `rbac.permissions` entry a store needs (in the state's namespace)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    for_lock: bool = False  # listed after the state objects' entries


class StateStore(abc.ABC):
    """Keeps a state's files (key -> bytes). Saves are all-or-nothing.

    What a store is (its kind, its rules for names, namespaces and keys, the RBAC it needs and
    where it keeps state by default) is said by the class, so `validate`, `prepare` and
    `runner rbac` can ask it without opening it.
    """

    kind: str = ""
    # What follows `KIND:` in --state-store, for the usage message (`local[:DIR]`); "" for none.
    location_usage: str = ""
    default_location: str | None = None  # where state lives when --state-store names no place

    @classmethod
    def usage(cls) -> str:
        return f"{cls.kind}[:{cls.location_usage}]" if cls.location_usage else cls.kind

    @classmethod
    def name_problem(cls, name: str) -> str | None:
        """Why `name` can't name a state here (said after the quoted name); None when it can.
        Every store so far keeps to the Kubernetes object name rule, so a step can move."""
        if _DNS_SUBDOMAIN.fullmatch(name) and len(name) <= 253:
            return None
        return 'is not a DNS-1123 subdomain (lowercase letters, digits, "-" and ".")'

    @classmethod
    def namespace_problem(cls, namespace: str) -> str | None:
        """Why `namespace` can't hold a state here; None when it can."""
        return None if _DNS_LABEL.fullmatch(namespace) else "is not a DNS-1123 label"

    @classmethod
    def rbac_rules(cls, lock: bool) -> tuple[RbacRule, ...]:
        """The Kubernetes permissions a Pipeline needs to keep (and with `lock`, lock) a state
        here; none for a store outside the cluster."""
        return ()

    @classmethod
    @abc.abstractmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> StateStore:
        """The store for this process: `location` is what followed `KIND:` in --state-store."""

    @abc.abstractmethod
    def load(self, ref: StateRef) -> dict[str, bytes] | None:
        """The stored files, or None when there is no state yet."""

    @abc.abstractmethod
    def save(self, ref: StateRef, files: dict[str, bytes]) -> None:
        """Replace the stored files; readers see the old set or the new, never a mix."""

    @abc.abstractmethod
    def remove(self, ref: StateRef) -> bool:
        """Remove the state and its lock; False when there was none."""

    @abc.abstractmethod
    @contextmanager
    def lock(self, ref: StateRef, wait_seconds: float, log: Logger | None = None) -> Iterator[None]:
        """Hold the state's lock for the block; raise LockHeld after `wait_seconds`. While
        waiting, say who holds it on `log` (see WaitNotice)."""

    @abc.abstractmethod
    def unlock(self, ref: StateRef) -> bool:
        """Break the lock, whoever holds it (operators only); False when none was held."""

    @abc.abstractmethod
    def describe(self, ref: StateRef) -> str:
        """Where the state lives, for messages: `configmap default/my-app-state`."""

    @staticmethod
    @abc.abstractmethod
    def key_problem(key: str) -> str | None:
        """Why this store can't keep a file under `key`, in words that name the rule; None
        when it can. `validate` asks it of the store a step names, a save of the store in use."""

    @classmethod
    def suggested_key(cls, key: str) -> str:
        """A key like `key` that this store can keep, for hints."""
        guess = re.sub(r"[^-._a-zA-Z0-9]+", "-", key)[:253]
        return guess if cls.key_problem(guess) is None else "state"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class WaitNotice:
    """Logs why a run is waiting for a lock: when it starts waiting, then every few seconds."""

    def __init__(self, log: Logger | None, step: str, wait_seconds: float) -> None:
        self.log = log
        self.step = step
        self.wait_seconds = wait_seconds
        self.started = time.monotonic()
        self._next = self.started

    def __call__(self, lock: str, holder: str) -> None:
        """Waiting for `lock` (as `describe()` names it), held by `holder`."""
        now = time.monotonic()
        if self.log is None or now < self._next:
            return
        self._next = now + WAIT_NOTICE_SECONDS
        waited = format_duration(round(now - self.started))
        self.log.info(
            f"waiting for {lock}, held by {holder} (another run on the same state): "
            f"waited {waited}, giving up after {format_duration(self.wait_seconds)}",
            step=self.step,
            event="lock-wait",
        )
