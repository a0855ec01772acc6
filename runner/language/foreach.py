"""The items of a `forEach:` (on a value or a manifest entry).

A list gives its elements, a mapping `{key, value}` items in its order, and null (a missing
list in the request) no items, as yq's `.users[]` gives nothing for a missing `users`.
Anything else is an error naming its type, never its value (it may come from a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.base.value_types import kind_of

# Each item renders into memory before the first file is written; a pod runs in 256 MiB.
MAX_ITEMS = 10_000


class ForEachError(ValueError):
    """What a forEach expression gave cannot be iterated (or holds too many items)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def items_of(value: Any, expression: str) -> list[Any]:
    """The items `value` (what `expression` gave) iterates as; raises ForEachError."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        items: list[Any] = [{"key": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = value
    else:
        raise ForEachError(
            f"forEach: {expression} gives {kind_of(value)}, not a list or a mapping",
            "give it an expression that gives a list, e.g. inputs.users",
        )
    if len(items) > MAX_ITEMS:
        raise ForEachError(
            f"forEach: {expression} gives {len(items)} items, more than {MAX_ITEMS:,}",
            "each item is built in memory before anything is written: split the request",
        )
    return items


def item_context(context: Mapping[str, Any], item: Any, index: int) -> dict[str, Any]:
    """The names of one item: every outer name, `item` and `index`."""
    return {**context, "item": item, "index": index}
