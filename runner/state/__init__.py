"""State stores: where a step's files are kept between runs, all behind one interface.

The registry below is the one list of stores: `--state-store`, `validate`, `prepare` and
`runner rbac` ask it which kinds exist, and each store class says its own rules (keys, names,
RBAC, default location). A new store is one module with a `StateStore` subclass (see
runner/state/base.py) plus one `register(KIND, "module:Class")` line.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.base.errors import InvalidError

if TYPE_CHECKING:
    from runner.state.base import StateRef, StateStore

NONE = "none"  # the kind of a step that keeps no state: no store at all

# kind -> "module:class", imported only when a step uses that store (the Kubernetes client
# costs a quarter of a second to import, which local runs and `validate` must not pay).
STORES: dict[str, str] = {}


def register(kind: str, target: str) -> None:
    """Make `kind` a store: `target` is "module:Class", imported when the store is first used."""
    if kind == NONE or not re.fullmatch(r"[a-z][a-z0-9-]*", kind) or ":" not in target:
        raise ValueError(f"bad store registration {kind!r} -> {target!r}")
    STORES[kind] = target


register("local", "runner.state.local:LocalStore")
register("configmap", "runner.state.configmap_secret:ConfigMapStore")
register("secret", "runner.state.configmap_secret:SecretStore")
register("s3", "runner.state.s3:S3Store")

IN_CLUSTER = "configmap"  # a step without `store:` inside a cluster, where Pipelines run
OUTSIDE = "local"  # ... and anywhere else


def kinds() -> list[str]:
    """Every store kind, in registration order."""
    return list(STORES)


def default_kind(environ: Mapping[str, str]) -> str:
    """configmap inside a cluster (the service account is there), local outside."""
    return IN_CLUSTER if environ.get("KUBERNETES_SERVICE_HOST") else OUTSIDE


def store_class(kind: str) -> type[StateStore]:
    module, _, name = STORES[kind].partition(":")
    cls: type[StateStore] = getattr(importlib.import_module(module), name)
    if cls.kind != kind:
        raise TypeError(f"{STORES[kind]} says its kind is {cls.kind!r}, registered as {kind!r}")
    return cls


@dataclass(frozen=True)
class StoreSpec:
    """`--state-store KIND[:WHERE]` (or $RUNNER_STATE_STORE), parsed once."""

    kind: str
    location: str | None = None  # what followed `KIND:`; None for none given

    @classmethod
    def parse(cls, text: str) -> StoreSpec:
        """InvalidError (exit 2) for a kind no store has."""
        kind, _, location = text.partition(":")
        if kind != NONE and kind not in STORES:
            usage = ", ".join(store_class(k).usage() for k in STORES)
            raise InvalidError(f'unknown state store "{text}": use {usage} or {NONE}')
        return cls(kind, location or None)

    def location_for(self, kind: str) -> str | None:
        """The location this override gives a store of `kind` (None: the store's default)."""
        return self.location if kind == self.kind else None


def describe_state(
    kind: str, ref: StateRef, override: StoreSpec | None, environ: Mapping[str, str]
) -> str:
    """Where a run keeps the state `ref` in a store of `kind` (as the store's `describe` says
    it), with `--state-store` as `override`; connecting to nothing."""
    location = override.location_for(kind) if override else None
    return store_class(kind).where(ref, location or None, environ)


def open_store(kind: str, location: str | None, environ: Mapping[str, str]) -> StateStore:
    """A store of `kind`; `location` is the part after `kind:` in `--state-store`."""
    return store_class(kind).open(location or None, environ)
