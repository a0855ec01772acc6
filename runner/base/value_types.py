"""The types of request and step-file values: their names in step files and in messages.

One table for the whole runner, so `type: integer` in an input, the schema's "expected an
integer" and a status message's "not an integer" all say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# The words for each JSON type, as messages use them ("expected a mapping, got a list").
TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
    "integer": "an integer", "boolean": "a boolean", "null": "null",
}  # fmt: skip

# The types an input's `type:` may name, and the Python values that satisfy each.
INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def json_type(value: object) -> str | None:
    """The JSON type of `value` ("integer" for whole ints), or None for what JSON has not."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: True is an int to Python
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return None


def kind_of(value: object) -> str:
    """A value's type in words for error messages: "an integer", "a mapping"."""
    kind = json_type(value)
    return TYPE_WORDS[kind] if kind else f"a {type(value).__name__}"


def type_words(types: Iterable[str]) -> str:
    """JSON type names in words: ["string", "array"] -> "a string or a list"."""
    names = [TYPE_WORDS.get(t, t) for t in types]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
