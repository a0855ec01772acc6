"""The step file JSON Schema, and its errors turned into located, readable Problems."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from runner.errors import Problem
from runner.spec.source import Document, PathKey

# What a pattern means, in words an author can act on.
_PATTERN_MEANING = {
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "must be a DNS-1123 label: lowercase letters, digits and "
    "'-', starting and ending with a letter or digit",
    "^[A-Za-z_][A-Za-z0-9_]*$": "must be an environment variable name (letters, digits, '_')",
    "^[A-Za-z_][A-Za-z0-9_-]*$": "must be a name of letters, digits, '_' and '-', not starting "
    "with a digit",
    "^[-._a-zA-Z0-9]+$": "must be a ConfigMap key: letters, digits, '-', '_' and '.'",
    "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$": "must be a duration like 30s, 10m, 1h30m or 500ms",
}
_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean",
    dict: "a mapping", list: "a list", type(None): "null",
}  # fmt: skip


def schema_text() -> str:
    """The schema as shipped (what `runner schema` prints)."""
    return resources.files("runner.spec").joinpath("step.schema.json").read_text("utf-8")


@cache
def validator() -> Any:
    """The compiled validator, built once per process."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_text()))


def schema_problems(doc: Document) -> list[Problem]:
    """Every schema violation in `doc`, each located and explained."""
    problems: list[Problem] = []
    for error in validator().iter_errors(doc.value):
        problems.extend(_explain(doc, error))
    return sorted(problems, key=lambda p: (p.line or 0, p.col or 0))


def describe(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def closest(word: str, choices: list[str] | set[str]) -> str | None:
    """The closest valid name to a typo, for `did you mean` hints."""
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def _explain(doc: Document, error: Any) -> list[Problem]:
    path: PathKey = tuple(error.absolute_path)
    schema = error.schema
    kind = error.validator
    value = error.instance
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        problems = []
        for key in value:
            if key in known:
                continue
            guess = closest(key, known)
            problems.append(
                doc.problem(
                    (*path, key),
                    f'unknown field "{key}"',
                    f'did you mean "{guess}"?' if guess else _known_fields(known),
                )
            )
        return problems
    if kind == "required":
        field = error.validator_value
        missing = [name for name in field if name not in value]
        return [doc.problem(path, f'missing required field "{name}"') for name in missing]
    if kind == "oneOf":
        return _explain_one_of(doc, error, path)
    if kind == "enum":
        options = error.validator_value
        guess = closest(str(value), [str(o) for o in options]) if isinstance(value, str) else None
        return [
            doc.problem(
                path,
                f"{json.dumps(value)} is not one of {', '.join(json.dumps(o) for o in options)}",
                f'did you mean "{guess}"?' if guess else None,
            )
        ]
    if kind == "const":
        return [doc.problem(path, f"must be {json.dumps(error.validator_value)}, not {json.dumps(value)}")]
    if kind == "type":
        expected = error.validator_value
        names = " or ".join(
            {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
             "integer": "an integer", "boolean": "a boolean"}.get(t, t)
            for t in (expected if isinstance(expected, list) else [expected])
        )  # fmt: skip
        return [doc.problem(path, f"expected {names}, got {describe(value)}")]
    if kind == "pattern":
        meaning = _PATTERN_MEANING.get(error.validator_value, f"must match {error.validator_value}")
        return [doc.problem(path, f"{json.dumps(value)} {meaning}")]
    if kind == "propertyNames":
        # The error is about a key: point at the key itself.
        bad = error.instance
        sub = schema["propertyNames"]
        if "not" in sub:
            return [doc.problem((*path, bad), f'"{bad}" is reserved')]
        meaning = _PATTERN_MEANING.get(sub.get("pattern", ""), "is not a valid name")
        return [doc.problem((*path, bad), f'"{bad}" {meaning}')]
    return [doc.problem(path, error.message)]


def _explain_one_of(doc: Document, error: Any, path: PathKey) -> list[Problem]:
    branches = error.validator_value
    value = error.instance
    # Branches that only say which field is required: exactly one of those fields.
    if all(set(b) == {"required"} for b in branches):
        names = [b["required"][0] for b in branches]
        present = [n for n in names if isinstance(value, dict) and n in value]
        if present:
            return [doc.problem(path, f"use only one of {', '.join(present)}")]
        return [doc.problem(path, f"needs one of {' or '.join(names)}")]
    # Otherwise report the errors of the branch that fits the value's shape best: the one
    # whose errors are all below the top (its type and discriminating fields matched).
    by_branch: dict[int, list[Any]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.schema_path[0], []).append(sub)
    fitting = [
        errs
        for errs in by_branch.values()
        if not any(not e.relative_path and e.validator in ("type", "required", "oneOf") for e in errs)
    ]
    if len(fitting) == 1:
        return [p for sub in fitting[0] for p in _explain(doc, sub)]
    if isinstance(value, dict) and "argv" not in value and "script" not in value and not path[-2:-1] == ("status",):
        if any("script" in b.get("properties", {}) for b in branches if isinstance(b, dict)):
            return [doc.problem(path, "a command needs argv or script",
                                _known_fields({"argv", "script"}))]
    description = error.schema.get("description") or ""
    return [doc.problem(path, f"expected {description[0].lower() + description[1:] if description else 'a different value'}")]


def _known_fields(known: set[str]) -> str:
    return "known fields: " + ", ".join(sorted(known))
