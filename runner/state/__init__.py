"""State stores: where a step's files are kept between runs, all behind one interface.

A new store is one module with a `StateStore` subclass plus one line in `STORES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.state.base import StateStore

# store name -> "module:class", imported only when a step uses that store (the Kubernetes
# client costs a quarter of a second to import, which local runs must not pay).
STORES = {
    "local": "runner.state.local:LocalStore",
    "configmap": "runner.state.kubernetes:ConfigMapStore",
    "secret": "runner.state.kubernetes:SecretStore",
}


def store_class(name: str) -> type[StateStore]:
    module, _, cls = STORES[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def open_store(kind: str, location: str | None, environ: Mapping[str, str]) -> StateStore:
    """A store of `kind`; `location` is the part after `kind:` in `--state-store`."""
    return store_class(kind).open(location or None, environ)
