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


class StateStore(abc.ABC):
    """Keeps a state's files (key -> bytes). Saves are all-or-nothing."""

    kind: str = ""

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
