"""State stores that only tests use, registered the way the product's own stores are."""

from __future__ import annotations

from runner.state import register

TEST_STORES = {"memory": "tests.stores.memory_store:MemoryStore"}


def register_test_stores() -> None:
    """Add the test stores to the registry: one line each, as for a store of the product."""
    for kind, target in TEST_STORES.items():
        register(kind, target)
