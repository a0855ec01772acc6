"""The step file JSON Schema, and its errors turned into located, readable Problems."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document, PathKey
from runner.base.value_types import json_type, kind_of, type_words
from runner.base.words import closest

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


def schema_text() -> str:
    """The schema as shipped (what `runner schema` prints)."""
    return resources.files("runner.stepfile").joinpath("step.schema.json").read_text("utf-8")


@cache
def validator() -> Any:
    """The compiled validator, built once per process.

    Its schema has every `$ref` (all local, none recursive) replaced by what it points at:
    validating the same, without a reference lookup at each step (a third faster).
    """
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    return Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


def _inline_refs(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 20:
        target = _inline_refs(defs[ref.rsplit("/", 1)[1]], defs, depth + 1)
        rest = {k: _inline_refs(v, defs, depth) for k, v in node.items() if k != "$ref"}
        # Keywords beside $ref (a description) win over the target's.
        return {**target, **rest} if not (set(rest) - _ANNOTATIONS) else {**rest, "allOf": [target]}
    return {
        k: (v if k in ("enum", "const", "examples", "default") else _inline_refs(v, defs, depth))
        for k, v in node.items()
    }


_ANNOTATIONS = {"description", "title", "examples", "default", "markdownDescription"}


def check_schema(doc: Document) -> tuple[list[Problem], set[str]]:
    """The schema's problems with `doc`, and the document paths of the nodes found wrong.

    A node in the second set is the wrong type, an unknown field, a bad value: semantic
    checks below it would only repeat the news. (Missing fields don't make a node wrong.)
    """
    problems: dict[tuple[object, ...], Problem] = {}  # the same problem can come twice
    for error in validator().iter_errors(doc.value):
        for problem in _explain(doc, error):
            problems.setdefault((problem.line, problem.col, problem.path, problem.message), problem)
    found = sorted(problems.values(), key=lambda p: (p.line or 0, p.col or 0))
    wrong = {p.path for p in found if not p.message.startswith(_MISSING)}
    return found, wrong


_MISSING = "missing required field"


describe = kind_of  # the words for a value's type, as every message uses them


def _did_you_mean(guess: str | None) -> str | None:
    return f'did you mean "{guess}"?' if guess else None


def _show(value: object, limit: int = 60) -> str:
    """A value as JSON, shortened to about `limit` characters (a string keeps its quotes)."""
    if isinstance(value, str) and len(value) > limit:
        return json.dumps(value[: limit - 5] + "...", ensure_ascii=False)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _explain(doc: Document, error: Any) -> list[Problem]:
    path: PathKey = tuple(error.absolute_path)
    schema = error.schema
    kind = error.validator
    value = error.instance
    if "propertyNames" in error.relative_schema_path:
        return [_explain_name(doc, error, path)]
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        problems = []
        for key in value:
            if key in known:
                continue
            problems.append(
                doc.problem(
                    (*path, key),
                    f'unknown field "{key}"',
                    _did_you_mean(closest(key, known)) or _known_fields(known),
                    key=True,
                )
            )
        return problems
    if kind == "required":
        missing = [name for name in error.validator_value if name not in value]
        if not missing:
            return []
        names = ", ".join(f'"{name}"' for name in missing)
        return [doc.problem(path, f"{_MISSING}{'s' if len(missing) > 1 else ''} {names}")]
    if kind == "oneOf":
        return _explain_one_of(doc, error, path)
    if kind == "enum":
        options = error.validator_value
        guess = closest(value, [str(o) for o in options]) if isinstance(value, str) else None
        hint = _did_you_mean(guess)
        if path == ("kind",) and not hint:  # a base manifest, say, left among the step files
            hint = (
                "only steps and templates belong in the steps folder; keep other files outside it"
            )
        return [
            doc.problem(
                path, f"{_show(value)} is not one of {', '.join(_show(o) for o in options)}", hint
            )
        ]
    if kind == "const":
        expected = error.validator_value
        return [doc.problem(path, f"must be {_show(expected)}, not {_show(value)}")]
    if kind == "type":
        expected = error.validator_value
        names = type_words(expected if isinstance(expected, list) else [expected])
        hint = "the value is empty (null)" if value is None else None
        if expected == "object" and isinstance(value, list) and value:
            hint = "write key: value pairs, without the leading '-'"
        return [doc.problem(path, f"expected {names}, got {describe(value)}", hint)]
    if kind == "pattern":
        meaning = _PATTERN_MEANING.get(error.validator_value, f"must match {error.validator_value}")
        return [doc.problem(path, f"{_show(value)} {meaning}")]
    if kind == "minLength":
        if error.validator_value == 1:
            return [doc.problem(path, "must not be empty")]
        return [doc.problem(path, f"must be at least {error.validator_value} characters")]
    if kind == "maxLength":
        limit = error.validator_value
        return [
            doc.problem(
                path, f"{_show(value, 30)} is longer than {limit} characters ({len(value)})"
            )
        ]
    if kind == "minItems":
        if error.validator_value == 1:
            return [doc.problem(path, "must not be empty")]
        return [doc.problem(path, f"needs at least {error.validator_value} items")]
    if kind == "uniqueItems":
        return [_explain_unique(doc, path, value)]
    if kind == "not" and isinstance(value, float) and value != value:
        return [doc.problem(path, "NaN is not a number of seconds")]  # durations refuse .nan
    if kind in ("exclusiveMinimum", "minimum"):
        word = "greater than" if kind == "exclusiveMinimum" else "at least"
        return [doc.problem(path, f"must be {word} {error.validator_value}, not {_show(value)}")]
    return [doc.problem(path, error.message)]


def _explain_name(doc: Document, error: Any, path: PathKey) -> Problem:
    """A bad key of a mapping whose keys are names (inputs, secrets, env, status)."""
    name = error.instance
    at = (*path, name)
    if error.validator == "not":
        return doc.problem(
            at,
            f'"{name}" is reserved',
            f'Kratix rejects a top-level "{name}" key in status.yaml; choose another name',
            key=True,
        )
    if error.validator == "pattern":
        meaning = _PATTERN_MEANING.get(error.validator_value, f"must match {error.validator_value}")
        return doc.problem(at, f"{_show(name)} {meaning}", key=True)
    if error.validator == "maxLength":
        return doc.problem(
            at, f"{_show(name, 30)} is longer than {error.validator_value} characters", key=True
        )
    return doc.problem(at, f"{_show(name)} is not a valid name", key=True)


def _explain_unique(doc: Document, path: PathKey, value: list[Any]) -> Problem:
    seen: list[Any] = []
    for index, item in enumerate(value):
        if any(item == s and type(item) is type(s) for s in seen):
            return doc.problem((*path, index), f"{_show(item)} is listed twice")
        seen.append(item)
    return doc.problem(path, "has duplicate items")


def _json_types(value: object) -> set[str]:
    """The JSON Schema types `value` belongs to (a whole float is an integer too)."""
    kind = json_type(value)
    if kind == "integer":
        return {"integer", "number"}
    if kind == "number":
        return {"number", "integer"} if value.is_integer() else {"number"}  # type: ignore[attr-defined]
    return {kind} if kind else set()


def _resolve(branch: dict[str, Any]) -> dict[str, Any]:
    ref = branch.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved = validator().schema["$defs"].get(ref.rsplit("/", 1)[1], {})
        return {**resolved, **{k: v for k, v in branch.items() if k != "$ref"}}
    return branch


def _branch_types(branch: dict[str, Any]) -> list[str] | None:
    """The JSON types a oneOf branch accepts, in the schema's order, or None when it doesn't say."""
    branch = _resolve(branch)
    if "type" in branch:
        kinds = branch["type"]
        return list(kinds if isinstance(kinds, list) else [kinds])
    options = branch.get("enum", [branch["const"]] if "const" in branch else None)
    if options is not None:
        return sorted(set().union(*(_json_types(o) for o in options)))
    return None


def _explain_one_of(doc: Document, error: Any, path: PathKey) -> list[Problem]:
    branches = error.validator_value
    value = error.instance
    # Branches that only say which field is required: exactly one of those fields.
    if all(set(b) == {"required"} for b in branches):
        names = [b["required"][0] for b in branches]
        present = [n for n in names if isinstance(value, dict) and n in value]
        if len(present) > 1:
            return [doc.problem(path, f"use only one of {', '.join(present)}")]
        return [
            doc.problem(
                path,
                f"needs {' or '.join(names)}",
                _known_fields(set(names)) if not present else None,
            )
        ]
    is_command = any("script" in _resolve(b).get("properties", {}) for b in branches)
    if is_command and isinstance(value, dict) and "argv" in value and "script" in value:
        return [
            doc.problem(
                path,
                "use only one of argv, script",
                "argv runs a program directly; script runs bash",
            )
        ]
    by_branch: dict[int, list[Any]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    # The branch that fits the value's shape: its only top-level complaints are unknown fields.
    fitting = [
        errors
        for errors in by_branch.values()
        if all(e.validator == "additionalProperties" for e in errors if not e.relative_path)
    ]
    if len(fitting) == 1:
        return [p for sub in fitting[0] for p in _explain(doc, sub)]
    # Else the branch made for the value's type (a string that isn't a duration pattern...).
    kinds = _json_types(value)
    typed = [
        by_branch.get(i, [])
        for i, branch in enumerate(branches)
        if set(_branch_types(branch) or kinds) & kinds
    ]
    if len(typed) == 1 and typed[0]:
        return [p for sub in typed[0] for p in _explain(doc, sub)]
    if is_command:
        return [_explain_command(doc, path, value, branches)]
    accepted: list[str] = []
    for branch in branches:
        for kind in _branch_types(branch) or ():
            if kind not in accepted:
                accepted.append(kind)
    if accepted:
        return [doc.problem(path, f"expected {type_words(accepted)}, got {describe(value)}")]
    description = error.schema.get("description") or ""
    what = description[0].lower() + description[1:] if description else "a different value"
    return [doc.problem(path, f"expected {what}")]


def _explain_command(doc: Document, path: PathKey, value: Any, branches: list[Any]) -> Problem:
    if isinstance(value, dict):
        known: set[str] = set()
        for branch in branches:
            known |= set(_resolve(branch).get("properties", {}))
        for key in value:
            if key not in known:
                return doc.problem(
                    (*path, key),
                    f'unknown field "{key}"',
                    _did_you_mean(closest(key, known)) or _known_fields(known),
                    key=True,
                )
        return doc.problem(
            path,
            "a command needs argv or script",
            'e.g. {argv: [terraform, init]} or {script: "..."}',
        )
    hint = None
    if isinstance(value, str):
        hint = (
            "write the command as a list of arguments, e.g. [terraform, init], or use "
            '{script: "..."} for shell text'
        )
    return doc.problem(
        path, f"expected a command (a list or a mapping), got {describe(value)}", hint
    )


def _known_fields(known: set[str]) -> str:
    return "known fields: " + ", ".join(sorted(known))
