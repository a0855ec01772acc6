"""The rules a JSON Schema can't express: template references, the shell-injection rule,
query syntax, defaults that fit their input, and state settings that make sense together."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner.errors import Problem
from runner.query import QueryError, compile_jmespath, compile_query
from runner.spec.model import MISSING, Step, StatusFromFile
from runner.spec.schema import closest
from runner.spec.source import Document, PathKey
from runner.template import TemplateError, references

# Every `${{ kratix.* }}` name a template may use (DESIGN.md, "Templates").
KRATIX_NAMES = frozenset(
    {
        "kratix.action", "kratix.workflow", "kratix.promise", "kratix.pipeline",
        "kratix.object.kind", "kratix.object.group", "kratix.object.version",
        "kratix.object.name", "kratix.object.namespace",
        "kratix.dirs.input", "kratix.dirs.output", "kratix.dirs.metadata",
    }
)  # fmt: skip

_ANY = "*"
# Where templates are expanded; `*` matches any key or index.
_TEMPLATED: tuple[PathKey, ...] = (
    ("spec", "env", _ANY),
    ("spec", "workdir"),
    ("spec", "state", "name"),
    ("spec", "state", "namespace"),
    ("spec", "status", _ANY),
    *(
        p
        for group in ("run", "dryRun")
        for p in (
            ("spec", group, _ANY, _ANY),  # items of an argv list
            ("spec", group, _ANY, "argv", _ANY),
            ("spec", group, _ANY, "env", _ANY),
            ("spec", group, _ANY, "workdir"),
        )
    ),
)


def semantic_problems(step: Step) -> list[Problem]:
    """Every semantic rule broken by one schema-valid step."""
    doc = step.document
    problems = list(_template_problems(doc, step))
    problems += _query_problems(step)
    problems += _default_problems(step)
    problems += _state_problems(step)
    return problems


def _matches(path: PathKey, pattern: PathKey) -> bool:
    return len(path) == len(pattern) and all(p == _ANY or p == k for k, p in zip(path, pattern))


def _strings(value: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _template_problems(doc: Document, step: Step) -> Iterator[Problem]:
    inputs = {i.name for i in step.inputs}
    secrets = {s.name for s in step.secrets}
    for path, text in _strings(doc.value.get("spec", {}), ("spec",)):
        if "${{" not in text:
            continue
        if path[-1] == "script" and path[1] in ("run", "dryRun"):
            yield doc.problem(
                path,
                "templates are not allowed in script: a value pasted into shell text can run "
                "as code",
                "read inputs from the environment instead, e.g. \"$INPUT_NAME\"",
            )
            continue
        if not any(_matches(path, pattern) for pattern in _TEMPLATED):
            yield doc.problem(path, "templates are not expanded here")
            continue
        try:
            refs = references(text)
        except TemplateError as exc:
            yield doc.problem(path, str(exc.message), offset=_offset(text, exc.offset))
            continue
        for ref in refs:
            problem = _reference_problem(ref.expr, ref.parts, inputs, secrets)
            if problem:
                message, hint = problem
                yield doc.problem(path, message, hint, offset=_offset(text, ref.start))


def _reference_problem(
    expr: str, parts: tuple[str, ...], inputs: set[str], secrets: set[str]
) -> tuple[str, str | None] | None:
    root = parts[0]
    if root == "inputs":
        if len(parts) < 2:
            return f'"{expr}" names no input', None
        if parts[1] in inputs:
            return None
        guess = closest(parts[1], inputs)
        return (
            f'unknown input "{parts[1]}" in ${{{{ {expr} }}}}',
            f'did you mean "inputs.{guess}"?' if guess else _declared(inputs),
        )
    if root == "kratix":
        if expr in KRATIX_NAMES:
            return None
        guess = closest(expr, KRATIX_NAMES)
        return (
            f'unknown name "{expr}"',
            f'did you mean "{guess}"?' if guess else "known: " + ", ".join(sorted(KRATIX_NAMES)),
        )
    if root == "secrets" or (len(parts) == 1 and root in secrets):
        name = parts[1] if root == "secrets" and len(parts) > 1 else root
        return (
            "secrets are never templated",
            f"commands get the secret as the environment variable ${name}; a script can use "
            f'"${name}"',
        )
    if root in inputs:
        return f'unknown name "{expr}"', f'did you mean "inputs.{expr}"?'
    guess = closest(root, {"inputs", "kratix"})
    return (
        f'unknown name "{expr}": templates use inputs.NAME or kratix.NAME',
        f'did you mean "{guess}"?' if guess else None,
    )


def _declared(inputs: set[str]) -> str:
    return "declared inputs: " + ", ".join(sorted(inputs)) if inputs else "no inputs are declared"


def _offset(text: str, offset: int | None) -> int | None:
    # Columns are only meaningful on the scalar's first line.
    if offset is None or "\n" in text[:offset]:
        return None
    return offset


def _query_problems(step: Step) -> Iterator[Problem]:
    doc = step.document
    for item in step.inputs:
        yield from _one_query(doc, (*item.path, item.language), item.expression, item.language)
    for key, value in step.status.items():
        if isinstance(value, StatusFromFile) and value.expression != ".":
            path = ("spec", "status", key, value.language)
            yield from _one_query(doc, path, value.expression, value.language)


def _one_query(doc: Document, path: PathKey, expression: str, language: str) -> Iterator[Problem]:
    try:
        (compile_query if language == "query" else compile_jmespath)(expression)
    except QueryError as exc:
        yield doc.problem(path, f"invalid {language}: {exc.message}", offset=exc.offset)


def _default_problems(step: Step) -> Iterator[Problem]:
    doc = step.document
    for item in step.inputs:
        if item.pattern is not None:
            try:
                re.compile(item.pattern)
            except re.error as exc:
                yield doc.problem((*item.path, "pattern"), f"invalid regular expression: {exc}")
                continue
        if item.default is not MISSING and item.default is not None:
            reason = item.check(item.default)
            if reason:
                yield doc.problem((*item.path, "default"), f"default does not fit the input: {reason}")
        if item.enum is not None and item.type is not None:
            for i, option in enumerate(item.enum):
                reason = item.check(option)
                if reason:
                    yield doc.problem((*item.path, "enum", i), f"enum value does not fit: {reason}")


def _state_problems(step: Step) -> Iterator[Problem]:
    doc = step.document
    state = step.state
    raw = doc.value["spec"].get("state")
    if raw is None:
        return
    path: PathKey = ("spec", "state")
    if state.store != "none" and not state.files:
        yield doc.problem(path, "a state needs the files to keep", 'add "files: [{path: terraform.tfstate}]"')
    if state.store == "none" and state.files:
        yield doc.problem((*path, "files"), 'store "none" keeps no files')
    seen: dict[str, int] = {}
    for i, f in enumerate(state.files):
        if f.key in seen:
            yield doc.problem((*path, "files", i), f'key "{f.key}" is already used by files[{seen[f.key]}]')
        seen.setdefault(f.key, i)
    if state.on_delete == "remove" and not step.is_delete:
        yield doc.problem((*path, "onDelete"), "onDelete applies only to delete steps", 'add "on: {action: delete}"')
