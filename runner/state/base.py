"""The state store interface and what every store shares.

The concurrency contract: `load` returns the files with a version token; `save(..., expected=
token)` replaces them only if the state is still the one that token names, else raises
StateChanged, so a run never overwrites what another run saved since it read. `lock` yields a
HeldLock, which says when the lock may have been lost (e.g. a lease that expired); the engine
asks it before saving and never saves once it is lost.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import re
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.base.errors import StoreError
from runner.platform.settings import format_duration

if TYPE_CHECKING:
    from runner.platform.log import Logger

MANAGED_BY = "kratix-step-runner"
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
MAX_NAME = 253  # a Kubernetes object name (DNS-1123 subdomain)
MAX_LABEL_VALUE = 63
WAIT_NOTICE_SECONDS = 5.0  # how often a run waiting for a lock says so
DIGEST_PREFIX = b"kratix-step-runner/state/v1\0"


class StateChanged(StoreError):
    """A save's `expected` version is no longer the stored one: another run saved (or removed)
    the state since this run read it."""


class NotFound(StoreError):
    """The thing asked for does not exist (a store's backend answered "not found")."""


class Unchecked(enum.Enum):
    UNCHECKED = "unchecked"


# save(expected=UNCHECKED): replace whatever is stored (seeding a state, tests, benchmarks).
UNCHECKED = Unchecked.UNCHECKED
Expected = str | None | Unchecked  # a version from load, None for "no state", or UNCHECKED


@dataclass(frozen=True)
class Loaded:
    """A state as `load` read it: its files and the version a later save expects."""

    files: dict[str, bytes]
    version: str  # opaque; only the store that made it compares it
    # Stored in a form to replace (plaintext being migrated, a retired encryption key): the
    # run saves it again even when its files did not change.
    stale: bool = False


def changed_since_read(where: str) -> StateChanged:
    """The one way every store words a stale save."""
    return StateChanged(
        f"state {where} was changed by another run since this run read it; "
        "not overwriting it (turn on state.lock to serialise runs)"
    )


def digest(files: Mapping[str, bytes]) -> str:
    """sha256 (hex) of a state: sorted keys, each key and value length-prefixed, so equal states
    digest equally whatever the dict order and no two different states share a framing."""
    sha = hashlib.sha256(DIGEST_PREFIX)
    sha.update(len(files).to_bytes(8, "big"))
    for key in sorted(files):
        name = key.encode("utf-8")
        value = files[key]
        sha.update(len(name).to_bytes(8, "big"))
        sha.update(name)
        sha.update(len(value).to_bytes(8, "big"))
        sha.update(value)
    return sha.hexdigest()


class HeldLock:
    """A state's lock while a run holds it, as `StateStore.lock` yields it."""

    def __init__(self, what: str) -> None:
        self.what = what

    def describe(self) -> str:
        """The lock, for messages: `Lease default/my-app-state`."""
        return self.what

    def lost_reason(self) -> str | None:
        """Why another run may hold the lock now (it expired unrenewed, another run took it);
        None while this run surely holds it. A lock the kernel keeps (flock) is never lost."""
        return None


@dataclass(frozen=True)
class StateRef:
    """Which state: the rendered name and namespace, and whose it is (for labels)."""

    step: str
    name: str
    namespace: str
    object_name: str | None = None
    object_namespace: str | None = None
    bucket: str | None = None  # `state.bucket`, rendered: for stores that need one (s3)

    def labels(self) -> dict[str, str]:
        """Labels on every stored object, so operators can find and clean up state."""
        labels = {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "runner.kratix.dev/step": label_value(self.step),
        }
        if self.object_name:
            labels["runner.kratix.dev/object-name"] = label_value(self.object_name)
        if self.object_namespace:
            labels["runner.kratix.dev/object-namespace"] = label_value(self.object_namespace)
        return labels


def label_value(text: str) -> str:
    """`text` as a label value, valid whatever `text` is: `text` itself when it is one (at most
    63 characters, alphanumeric at both ends), else a stable shortened form that keeps the
    start and ends in 10 hex digits of its sha256, so that different texts stay apart."""
    if len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(text):
        return text
    tag = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    head = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[: MAX_LABEL_VALUE - len(tag) - 1]
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", head)
    return f"{head}-{tag}" if head else tag


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.fullmatch(text) is not None


@dataclass(frozen=True)
class DerivedName:
    """A name a store makes from a state's name, for `name_problem`: `what` it names (`chunk
    objects`), its `form` in words (`NAME-GENERATION-INDEX`) and the longest `example`."""

    what: str
    form: str
    example: str


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
    # Whether a state needs a bucket: `state.bucket`, or one in --state-store's location.
    needs_bucket: bool = False
    # The environment variables the store reads (credentials, endpoint): masked when secret,
    # and what `runner pipeline` passes on from the step's secrets of the same names.
    environment: tuple[str, ...] = ()
    # Whether the state's namespace is part of where it is kept (an s3 key is not).
    namespaced: bool = True

    @classmethod
    def usage(cls) -> str:
        return f"{cls.kind}[:{cls.location_usage}]" if cls.location_usage else cls.kind

    @classmethod
    def name_problem(cls, name: str) -> str | None:
        """Why `name` can't name a state here (said after the quoted name); None when it can.

        The one rule `validate` (for a fixed name) and `run` (for a rendered one, before any
        command) ask. Every store so far keeps to the Kubernetes object name rule, so a step
        can move; and every name the store makes from it (`derived_names`) must keep to it too.
        """
        if not _DNS_SUBDOMAIN.fullmatch(name):
            return 'is not a DNS-1123 subdomain (lowercase letters, digits, "-" and ".")'
        if len(name) > MAX_NAME:
            return f"is {len(name)} characters long: a name has at most {MAX_NAME}"
        for derived in cls.derived_names(name):
            if len(derived.example) > MAX_NAME or not _DNS_SUBDOMAIN.fullmatch(derived.example):
                most = MAX_NAME - (len(derived.example) - len(name))
                return (
                    f"is {len(name)} characters long: the {cls.kind} store names its "
                    f"{derived.what} {derived.form}, which can be {len(derived.example)} "
                    f"characters, over the {MAX_NAME} of a name; use at most {most}"
                )
        return None

    @classmethod
    def derived_names(cls, name: str) -> tuple[DerivedName, ...]:
        """The names besides `name` itself that this store gives the objects of a state named
        `name`, each at its longest; `name_problem` holds them to the same rule. (Label values
        made from names need no check: `label_value` makes every text a valid one.)"""
        return ()

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
    def load(self, ref: StateRef) -> Loaded | None:
        """The stored files and their version, or None when there is no state yet."""

    @abc.abstractmethod
    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        """Replace the stored files and return the new version; readers see the old set or the
        new, never a mix. With `expected` (a version `load` returned, or None when it found no
        state) raise StateChanged, writing nothing, if the state is no longer that one. A store
        may let pass changes that left the files as they were (a label an operator added)."""

    @abc.abstractmethod
    def remove(self, ref: StateRef) -> bool:
        """Remove the state and its lock; False when there was none."""

    @abc.abstractmethod
    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> AbstractContextManager[HeldLock]:
        """Hold the state's lock for the block, which gets the HeldLock; raise LockHeld after
        `wait_seconds`. While waiting, say who holds it on `log` (see WaitNotice), and pause with
        runner.platform.interrupts.pause, so that a signal ends the wait at once (Interrupted), before
        the lock is taken. A store whose lock can be lost tells so on `log` when it happens,
        and through `lost_reason()`."""

    @abc.abstractmethod
    def unlock(self, ref: StateRef) -> bool:
        """Break the lock, whoever holds it (operators only); False when none was held."""

    @abc.abstractmethod
    def describe(self, ref: StateRef) -> str:
        """Where the state lives, for messages: `configmap default/my-app-state`."""

    @classmethod
    def bucket_for(cls, ref: StateRef, location: str | None) -> str | None:
        """The bucket a store that `needs_bucket` keeps `ref` in, with `location` from
        --state-store (which wins over `ref.bucket`); None for a store without buckets."""
        return None

    @classmethod
    def where(cls, ref: StateRef, location: str | None, environ: Mapping[str, str]) -> str:
        """`describe(ref)` of the store a run would open with `location`, connecting to nothing
        (`runner plan`). By default the store is opened: a store whose `open` connects says it
        another way."""
        store = cls.open(location, environ)
        try:
            return store.describe(ref)
        finally:
            store.close()

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
