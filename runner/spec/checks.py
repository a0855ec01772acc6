"""The rules a JSON Schema can't express: template references, the shell-injection rule,
query syntax, defaults that fit their input, state settings that make sense together (keys the
store can hold), and output targets inside the output folder.

The checks read the raw document, not the typed Step, and take nothing for granted about
its shape: they run even when the schema found problems, so one `validate` reports
everything. (The loader drops what they say about nodes the schema already found wrong.)
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any

from runner.errors import Problem
from runner.query import QueryError, compile_jmespath, compile_query
from runner.spec.model import MISSING, Input, input_variable, state_key
from runner.spec.schema import closest
from runner.spec.source import Document, PathKey
from runner.template import TemplateError, references
from runner.value_types import INPUT_TYPES

# Every `${{ kratix.* }}` name a template may use (docs/step-format.md, "Templates").
KRATIX_NAMES = frozenset(
    {
        "kratix.action", "kratix.workflow", "kratix.promise", "kratix.pipeline",
        "kratix.object.kind", "kratix.object.group", "kratix.object.version",
        "kratix.object.name", "kratix.object.namespace",
        "kratix.dirs.input", "kratix.dirs.output", "kratix.dirs.metadata",
        "kratix.crdPlural", "kratix.clusterScoped", "kratix.dryRun",
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
# Prose: a `${{` in a description is just text.
_PROSE: tuple[PathKey, ...] = (
    ("spec", "inputs", _ANY, "description"),
    ("spec", "secrets", _ANY, "description"),
)
_TEMPLATED_WHERE = (
    "templates work in argv items, env values, workdir, state.name, "
    "state.namespace and status values"
)


def document_problems(doc: Document) -> list[Problem]:
    """Every semantic rule broken by one document (a mapping), whatever its shape."""
    spec = doc.value.get("spec") if isinstance(doc.value, dict) else None
    if not isinstance(spec, dict):
        return []
    inputs = _mapping(spec.get("inputs"))
    secrets = _mapping(spec.get("secrets"))
    problems = list(_template_problems(doc, spec, set(inputs), set(secrets)))
    problems += _query_problems(doc, spec, inputs)
    problems += _input_problems(doc, inputs)
    problems += _state_problems(doc, spec)
    problems += _output_problems(doc, spec)
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _matches(path: PathKey, pattern: PathKey) -> bool:
    if len(path) != len(pattern):
        return False
    return all(p in (_ANY, k) for k, p in zip(path, pattern, strict=True))


def _strings(value: Any, path: PathKey) -> Iterator[tuple[PathKey, str]]:
    """Every string in `value` with its path (iterative: values can nest deeply)."""
    stack: list[tuple[PathKey, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            stack.extend(((*where, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(item))))


# -- templates ------------------------------------------------------------------------------


def _template_problems(
    doc: Document, spec: dict[str, Any], inputs: set[str], secrets: set[str]
) -> Iterator[Problem]:
    for path, text in _strings(spec, ("spec",)):
        if "${{" not in text:
            continue
        first = _offset(text, text.index("${{"))
        if len(path) == 4 and path[3] == "script" and path[1] in ("run", "dryRun"):
            yield doc.problem(
                path,
                "templates are not allowed in script: a value pasted into shell text can run "
                "as code",
                f'read inputs from the environment instead, e.g. "${_script_example(text)}"',
                offset=first,
            )
            continue
        if any(_matches(path, pattern) for pattern in _PROSE):
            continue
        if not any(_matches(path, pattern) for pattern in _TEMPLATED):
            yield doc.problem(
                path, "templates are not expanded here", _TEMPLATED_WHERE, offset=first
            )
            continue
        try:
            refs = references(text)
        except TemplateError as exc:
            yield doc.problem(path, exc.message, offset=_offset(text, exc.offset))
            continue
        for ref in refs:
            problem = _reference_problem(ref.expr, ref.parts, inputs, secrets)
            if problem:
                message, hint = problem
                yield doc.problem(path, message, hint, offset=_offset(text, ref.start))


def _script_example(text: str) -> str:
    """`$INPUT_NAME` for the first input a script tried to template, for the hint."""
    try:
        refs = references(text)
    except TemplateError:
        refs = []
    for ref in refs:
        if ref.parts[0] == "inputs" and len(ref.parts) == 2:
            return input_variable(ref.parts[1])
    return "INPUT_NAME"


def _reference_problem(
    expr: str, parts: tuple[str, ...], inputs: set[str], secrets: set[str]
) -> tuple[str, str | None] | None:
    root = parts[0]
    if root == "inputs":
        if len(parts) < 2:
            return f'"{expr}" names no input', _declared(inputs)
        name = parts[1]
        if name in inputs:
            return None
        if name in secrets:
            return _secret_problem(name)
        guess = closest(name, inputs)
        return (
            f'unknown input "{name}" in ${{{{ {expr} }}}}',
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
    if root == "secrets":
        return _secret_problem(parts[1] if len(parts) > 1 else "NAME")
    if len(parts) == 1 and root in secrets:
        return _secret_problem(root)
    if root in inputs:
        return f'unknown name "{expr}"', f'did you mean "inputs.{expr}"?'
    guess = closest(root, {"inputs", "kratix"})
    return (
        f'unknown name "{expr}": templates use inputs.NAME or kratix.NAME',
        f'did you mean "{guess}"?' if guess else None,
    )


def _secret_problem(name: str) -> tuple[str, str]:
    return (
        f'secrets are never templated (found "{name}")',
        f'commands get the secret as the environment variable {name}; a script can use "${name}"',
    )


def _declared(inputs: set[str]) -> str:
    return "declared inputs: " + ", ".join(sorted(inputs)) if inputs else "no inputs are declared"


def _offset(text: str, offset: int | None) -> int | None:
    # Columns are only meaningful on the scalar's first line.
    if offset is None or "\n" in text[:offset]:
        return None
    return offset


# -- queries --------------------------------------------------------------------------------


def _query_problems(
    doc: Document, spec: dict[str, Any], inputs: dict[str, Any]
) -> Iterator[Problem]:
    for name, raw in inputs.items():
        yield from _queries_of(doc, ("spec", "inputs", name), raw)
    for key, raw in _mapping(spec.get("status")).items():
        yield from _queries_of(doc, ("spec", "status", key), raw)


def _queries_of(doc: Document, path: PathKey, raw: Any) -> Iterator[Problem]:
    if not isinstance(raw, dict):
        return
    for language in ("query", "jmespath"):
        expression = raw.get(language)
        if isinstance(expression, str) and expression:
            yield from _one_query(doc, (*path, language), expression, language)


def _one_query(doc: Document, path: PathKey, expression: str, language: str) -> Iterator[Problem]:
    try:
        (compile_query if language == "query" else compile_jmespath)(expression)
    except QueryError as exc:
        message = exc.message
        if language == "jmespath" and message.startswith("invalid JMESPath: "):
            message = message[len("invalid JMESPath: ") :]
        yield doc.problem(path, f"invalid {language}: {message}", offset=exc.offset)


# -- inputs ---------------------------------------------------------------------------------


def _input_problems(doc: Document, inputs: dict[str, Any]) -> Iterator[Problem]:
    env_names: dict[str, str] = {}
    for name, raw in inputs.items():
        path: PathKey = ("spec", "inputs", name)
        variable = input_variable(name)
        if variable in env_names:
            yield doc.problem(
                path,
                f'inputs "{env_names[variable]}" and "{name}" are both ${variable} to scripts',
                "rename one of them",
                key=True,
            )
        env_names.setdefault(variable, name)
        if isinstance(raw, dict):
            yield from _default_problems(doc, path, raw)


def _default_problems(doc: Document, path: PathKey, raw: dict[str, Any]) -> Iterator[Problem]:
    """A default (and each enum option) must fit the input's own type, enum and pattern."""
    kind = (
        raw.get("type") if isinstance(raw.get("type"), str) and raw["type"] in INPUT_TYPES else None
    )
    enum = tuple(raw["enum"]) if isinstance(raw.get("enum"), list) and raw["enum"] else None
    pattern = raw.get("pattern") if isinstance(raw.get("pattern"), str) else None
    if pattern is not None:
        reason = _regex_problem(pattern)
        if reason:
            yield doc.problem((*path, "pattern"), f"invalid regular expression: {reason}")
            pattern = None
    default = raw.get("default", MISSING)
    if default is not MISSING and default is not None:
        reason = Input("", "", "query", type=kind, enum=enum, pattern=pattern).check(default)
        if reason:
            yield doc.problem((*path, "default"), f"default does not fit the input: {reason}")
    if enum is not None and (kind is not None or pattern is not None):
        option_check = Input("", "", "query", type=kind, pattern=pattern)
        for i, option in enumerate(enum):
            reason = option_check.check(option)
            if reason:
                yield doc.problem((*path, "enum", i), f"enum value does not fit: {reason}")


def _regex_problem(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        return f"{exc.msg}{where}"
    except (OverflowError, RecursionError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


# -- state ----------------------------------------------------------------------------------


def _state_problems(doc: Document, spec: dict[str, Any]) -> Iterator[Problem]:
    state = spec.get("state")
    if not isinstance(state, dict):
        return
    path: PathKey = ("spec", "state")
    store = state.get("store")
    files = state.get("files")
    if store != "none" and "files" not in state:
        yield doc.problem(
            path,
            "a state needs the files to keep",
            'add "files: [{path: terraform.tfstate}]", or "store: none"',
        )
    if store == "none" and files:
        yield doc.problem((*path, "files"), 'store "none" keeps no files')
    seen: dict[str, int] = {}
    for i, item in enumerate(files if isinstance(files, list) else ()):
        if not isinstance(item, dict):
            continue
        file_path, explicit = item.get("path"), item.get("key")
        if not isinstance(file_path, str) or not isinstance(explicit, (str, type(None))):
            continue
        key = state_key(file_path, explicit)
        where = (*path, "files", i, "key" if explicit else "path")
        problem = _key_problem(doc, where, store, file_path, key, bool(explicit))
        if problem is not None:
            yield problem
            continue
        if key in seen:
            yield doc.problem(
                (*path, "files", i),
                f'key "{key}" is already used by files[{seen[key]}]',
                'give one of them its own "key:"',
            )
        seen.setdefault(key, i)
    if state.get("onDelete") == "remove" and not _is_delete(spec):
        yield doc.problem(
            (*path, "onDelete"),
            "onDelete applies only to delete steps",
            'add "on: {action: delete}"',
        )


def _key_problem(
    doc: Document, where: PathKey, store: Any, file_path: str, key: str, explicit: bool
) -> Problem | None:
    """A state key the step's store can't hold. A step without a store is held to the
    ConfigMap rule: that is its store in a cluster."""
    from runner.state import IN_CLUSTER, STORES, store_class

    if not key:
        return doc.problem(
            where,
            f'"{file_path}" names no file: a file name is needed (it is the key too)',
            'name the file itself, e.g. "path: terraform.tfstate"',
        )
    rule = store_class(store if isinstance(store, str) and store in STORES else IN_CLUSTER)
    reason = rule.key_problem(key)
    if reason is None:
        return None
    example = f'"key: {rule.suggested_key(key)}"'
    if explicit:
        return doc.problem(
            where, f'state key "{key}" is not valid: {reason}', f"choose another, e.g. {example}"
        )
    return doc.problem(
        where,
        f'state key "{key}" (the file\'s name) is not valid: {reason}',
        f"give the file an explicit key, e.g. {example}",
    )


# -- output ---------------------------------------------------------------------------------


def _output_problems(doc: Document, spec: dict[str, Any]) -> Iterator[Problem]:
    """Each `output:` target must stay inside the output folder; `to` defaults to `from`."""
    output = spec.get("output")
    for i, item in enumerate(output if isinstance(output, list) else ()):
        if not isinstance(item, dict):
            continue
        field = "to" if "to" in item else "from"
        target = item.get(field)
        if not isinstance(target, str) or not target:
            continue
        reason = _outside_output(target)
        if reason is None:
            continue
        if field == "to":
            name = posixpath.basename(posixpath.normpath(target)) or "app"
            example = name + "/" if target.endswith("/") else name
            hint = f'give a path inside the output folder, e.g. "to: {example}"'
        else:
            hint = 'add a "to:" inside the output folder: it defaults to the "from:" path'
        yield doc.problem(("spec", "output", i, field), f'output target "{target}" {reason}', hint)


def _outside_output(target: str) -> str | None:
    if target.startswith("/"):
        return "is absolute: targets are relative to the output folder"
    normal = posixpath.normpath(target)
    if normal == ".." or normal.startswith("../"):
        return "is outside the output folder"
    return None


def _is_delete(spec: dict[str, Any]) -> bool:
    action = _mapping(spec.get("on")).get("action", "configure")
    return action == "delete" or (isinstance(action, list) and "delete" in action)
