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
from typing import TYPE_CHECKING, Any

from runner.base.errors import Problem
from runner.base.source import Document, PathKey
from runner.base.value_types import INPUT_TYPES
from runner.base.words import closest
from runner.language.interpolation import TemplateError, has_template, references
from runner.language.query import QueryError, compile_jmespath, compile_query
from runner.stepfile.language import (
    StepReference,
    language_problems,
    outside_output,
    reference_problem,
    scalar_offset,
    step_scope,
)
from runner.stepfile.model import (
    GENERATED_PREFIX,
    MISSING,
    Input,
    charset_problem,
    input_variable,
    state_key,
)
from runner.stepfile.names import Scope
from runner.stepfile.sensitivity import OPEN_SINKS, SINK_REASONS, Taint, step_taint
from runner.stepfile.template_places import AFTER, is_prose, place_of, where_templates_work

if TYPE_CHECKING:
    from runner.state.base import StateStore


def document_problems(doc: Document, refs: list[StepReference] | None = None) -> list[Problem]:
    """Every semantic rule broken by one document (a mapping), whatever its shape.

    `refs` collects the document's `steps.NAME.outputs.X` for the loader's check across files.
    """
    refs = [] if refs is None else refs
    spec = doc.value.get("spec") if isinstance(doc.value, dict) else None
    if not isinstance(spec, dict):
        return []
    inputs = _mapping(spec.get("inputs"))
    scope = step_scope(doc, spec)
    taint = step_taint(spec)
    problems = list(_template_problems(doc, spec, scope, refs, taint))
    problems += language_problems(doc, spec, scope, refs)
    problems += _query_problems(doc, spec, inputs)
    problems += _input_problems(doc, inputs)
    problems += _state_problems(doc, spec)
    problems += _generate_problems(doc, spec)
    problems += _output_problems(doc, spec)
    problems += _duration_problems(doc, spec)
    return problems


_DURATIONS = frozenset({"timeout", "delay", "maxDelay", "retryAfter"})


def _duration_problems(doc: Document, spec: dict[str, Any]) -> Iterator[Problem]:
    """A duration the schema's pattern lets through but no Go duration can hold."""
    from runner.platform.settings import parse_duration

    for path, text in _strings(spec, ("spec",)):
        if path[-1] in _DURATIONS and "${{" not in text:
            try:
                parse_duration(text)
            except ValueError as exc:
                if "too long" in str(exc):
                    yield doc.problem(path, str(exc))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(
    value: Any, path: PathKey, *, keys_under: PathKey | None = None
) -> Iterator[tuple[PathKey, str]]:
    """Every string in `value` with its path (iterative: values can nest deeply); and under
    `keys_under`, templated mapping keys too (at their value's path): a manifest's keys are
    rendered like its values."""
    stack: list[tuple[PathKey, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            if keys_under is not None and where[: len(keys_under)] == keys_under:
                yield from (((*where, k), k) for k in item if isinstance(k, str) and "${{" in k)
            stack.extend(((*where, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(item))))


# -- templates ------------------------------------------------------------------------------


def _template_problems(
    doc: Document, spec: dict[str, Any], scope: Scope, refs: list[StepReference], taint: Taint
) -> Iterator[Problem]:
    for path, text in _strings(spec, ("spec",), keys_under=("spec", "manifests")):
        if "${{" not in text:
            continue
        first = scalar_offset(text, text.index("${{"))
        if len(path) == 4 and path[3] == "script" and path[1] in ("run", "dryRun"):
            yield doc.problem(
                path,
                "templates are not allowed in script: a value pasted into shell text can run "
                "as code",
                f'read inputs from the environment instead, e.g. "${_script_example(text)}"',
                offset=first,
            )
            continue
        if is_prose(path):
            continue
        place = None if _in_status_file(spec, path) else place_of(path)
        if place is None:
            yield doc.problem(
                path, "templates are not expanded here", where_templates_work(), offset=first
            )
            continue
        phase, sink = place.phase, place.sink
        try:
            found = references(text)
        except TemplateError as exc:
            yield doc.problem(path, exc.message, offset=scalar_offset(text, exc.offset))
            continue
        here = scope.after_commands() if phase == AFTER else scope
        each = _for_each_of(spec, path) if place.each else None
        here = here.with_item() if each is not None else here
        restricted = None if sink in OPEN_SINKS else sink
        for ref in found:
            offset = scalar_offset(text, ref.start)
            if "secrets" in place.reads and ref.parts[0] == "secrets":
                yield from _stdin_secret_problems(doc, path, offset, ref.parts, scope)
                continue
            problem = reference_problem(
                doc, path, offset, ref.parts, here, refs, template=True, sink=restricted
            )
            if problem:
                yield problem
            elif restricted is not None and ref.parts[0] == "item" and each is not None:
                yield from _item_sensitive_problems(doc, path, offset, each, taint, refs, sink)
            elif restricted is not None:
                yield from _sensitive_problems(doc, path, offset, ref.parts, taint, refs, sink)


def _for_each_of(spec: dict[str, Any], path: PathKey) -> str | None:
    """The forEach expression of the manifest entry `path` is in, if it has one."""
    manifests = spec.get("manifests")
    if len(path) < 3 or path[1] != "manifests" or not isinstance(manifests, list):
        return None
    index = path[2]
    entry = manifests[index] if isinstance(index, int) and index < len(manifests) else None
    found = entry.get("forEach") if isinstance(entry, dict) else None
    return found if isinstance(found, str) else None


def _item_sensitive_problems(
    doc: Document, path: PathKey, offset: int | None, each: str, taint: Taint,
    refs: list[StepReference], sink: str,
) -> Iterator[Problem]:  # fmt: skip
    """`${{ item.x }}` holds what the entry's forEach reads: sensitive if that is."""
    from runner.language.expressions import ExpressionError, compile_expression

    try:
        compiled = compile_expression(each)
    except ExpressionError:
        return  # reported at the forEach
    names = [n.path for n in compiled.names()]
    if compiled.reads_whole:
        names += [("values",), ("outputs",)]
    for parts in names:
        if parts[0] == "steps" and len(parts) >= 4 and parts[2] == "outputs":
            refs.append(StepReference(doc, path, offset, parts[1], parts[3], sink=sink, via="item"))
        else:
            yield from _sensitive_problems(doc, path, offset, parts, taint, refs, sink, "item")


def _in_status_file(spec: dict[str, Any], path: PathKey) -> bool:
    """Whether path is a field of a status value read from a file (`{file, query}`): those
    fields are not templates, while the strings of nested status data are."""
    if len(path) < 4 or path[1] != "status":
        return False
    value = _mapping(spec.get("status")).get(str(path[2]))
    return isinstance(value, dict) and "file" in value


def _stdin_secret_problems(
    doc: Document, path: PathKey, offset: int | None, parts: tuple[str, ...], scope: Scope
) -> Iterator[Problem]:
    """`${{ secrets.NAME }}` in stdin: NAME must be one of the step's secrets."""
    name = parts[1] if len(parts) == 2 else None
    if name is not None and name in scope.secrets:
        return
    if name is None:
        yield doc.problem(path, f'"{".".join(parts)}" names no secret', "write secrets.NAME")
        return
    guess = closest(name, scope.secrets)
    hint = f'did you mean "secrets.{guess}"?' if guess else "declare it under spec.secrets"
    yield doc.problem(path, f'unknown secret "{name}"', hint, offset=offset)


def _sensitive_problems(
    doc: Document, path: PathKey, offset: int | None, parts: tuple[str, ...], taint: Taint,
    refs: list[StepReference], sink: str, read: str | None = None,
) -> Iterator[Problem]:  # fmt: skip
    """A sensitive name where its text would be shown; reads of other steps' outputs through
    a value or output are kept for the check across files. `read`: the name the template
    reads when it is not `parts` itself (`item`, which holds what its forEach reads)."""
    if parts[0] not in ("values", "outputs"):
        return  # a direct `steps.X.outputs.Y` went into refs with this sink already
    source, reads = taint.of(parts)
    shown = read or ".".join(parts)
    if source is not None:
        why, hint = SINK_REASONS[sink]
        built = "" if source == shown else f" (it is built from {source})"
        yield doc.problem(path, f'"{shown}" is sensitive{built}: {why}', hint, offset=offset)
        return
    for step, output in sorted(reads):
        refs.append(StepReference(doc, path, offset, step, output, sink=sink, via=shown))


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


# -- queries --------------------------------------------------------------------------------


def _query_problems(
    doc: Document, spec: dict[str, Any], inputs: dict[str, Any]
) -> Iterator[Problem]:
    for name, raw in inputs.items():
        yield from _queries_of(doc, ("spec", "inputs", name), raw)
    for key, raw in _mapping(spec.get("status")).items():
        if isinstance(raw, dict) and "file" in raw:  # else it is data, not a query
            yield from _queries_of(doc, ("spec", "status", key), raw)
    for name, raw in _mapping(spec.get("outputs")).items():
        if isinstance(raw, dict) and "file" in raw:  # else `jmespath` is an expression
            yield from _queries_of(doc, ("spec", "outputs", name), raw)


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
            yield from default_problems(doc, path, raw)


def default_problems(
    doc: Document, path: PathKey, raw: dict[str, Any], noun: str = "input"
) -> Iterator[Problem]:
    """A default (and each enum option) must fit the input's (param's) type, enum and pattern."""
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
            yield doc.problem((*path, "default"), f"default does not fit the {noun}: {reason}")
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
    if store != "none" and "files" not in state and not _generated(spec):
        yield doc.problem(
            path,
            "a state needs something to keep: files, or a generated secret",
            'add the files it keeps ("files: [{path: terraform.tfstate}]"), declare the '
            "generated secrets it keeps (as a delete step that removes them must too: "
            '"secrets: {PW: {generate: {length: 24}}}"), or "store: none"',
        )
    if store == "none" and files:
        yield doc.problem((*path, "files"), 'store "none" keeps no files')
    if store == "none" and "encryption" in state:
        yield doc.problem((*path, "encryption"), 'store "none" keeps nothing to encrypt')
    if "bucket" in state and isinstance(store, str) and not _store_has_buckets(store):
        yield doc.problem(
            (*path, "bucket"),
            f'store "{store}" keeps no bucket: bucket is for the s3 store',
            'use "store: s3", or remove "bucket"',
        )
    seen: dict[str, int] = {}
    for i, item in enumerate(files if isinstance(files, list) else ()):
        if not isinstance(item, dict):
            continue
        file_path, explicit = item.get("path"), item.get("key")
        if not isinstance(file_path, str) or not isinstance(explicit, (str, type(None))):
            continue
        if outside_output(file_path) is not None:  # the same rule: relative, never climbing out
            yield doc.problem(
                (*path, "files", i, "path"),
                f'state file "{file_path}" leaves the workdir: state files are relative to the '
                "workdir",
                "restore it inside the workdir; a command may copy it where it is needed",
            )
            continue
        key = state_key(file_path, explicit)
        where = (*path, "files", i, "key" if explicit else "path")
        if key.startswith(GENERATED_PREFIX):
            yield doc.problem(
                where,
                f'state key "{key}" starts with "{GENERATED_PREFIX}": the keys of generated '
                "secrets",
                f'give the file another key, e.g. "key: {key.removeprefix(GENERATED_PREFIX)}"',
            )
            continue
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
    name_problem = _state_name_problem(doc, path, store, state)
    if name_problem is not None:
        yield name_problem
    if state.get("onDelete") == "remove" and not _is_delete(spec):
        yield doc.problem(
            (*path, "onDelete"),
            "onDelete applies only to delete steps",
            'add "on: {action: delete}"',
        )


def _generated(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The secrets with `generate:` (their raw mappings), by name."""
    return {
        name: raw
        for name, raw in _mapping(spec.get("secrets")).items()
        if isinstance(raw, dict) and "generate" in raw
    }


# Fields of a secret that say how to read it, which a generated secret never is.
_READ_ONLY_FIELDS = ("required", "allowEmpty", "mask", "secretKeyRef")


def _generate_problems(doc: Document, spec: dict[str, Any]) -> Iterator[Problem]:
    """A generated secret needs a state to keep it, one that does not keep it in clear in a
    ConfigMap, and a charset a password can be drawn from."""
    state = spec.get("state")
    for name, raw in _generated(spec).items():
        path: PathKey = ("spec", "secrets", name, "generate")
        if not isinstance(state, dict) or state.get("store") == "none":
            why = "this step has no state" if not isinstance(state, dict) else 'its store is "none"'
            yield doc.problem(
                path,
                f"secret {name} is generated on the first run and kept in the step's state, "
                f"and {why}: every run would make a new one",
                'add "state: {store: secret, name: ...}" to the step',
            )
        elif state.get("store") in (None, "configmap") and "encryption" not in state:
            store = state.get("store")
            where = "a ConfigMap" if store else "a ConfigMap in a cluster (the default store)"
            yield doc.problem(
                ("spec", "state", "store") if store else ("spec", "state"),
                f"secret {name} is generated and kept in the step's state: {where} would "
                "hold it in clear",
                'use "store: secret", or encrypt the state ("encryption: {key: {env: '
                'RUNNER_STATE_KEY}}")',
            )
        key = GENERATED_PREFIX + name
        store = state.get("store") if isinstance(state, dict) else None
        if (reason := _store_rule(store).key_problem(key)) is not None:
            yield doc.problem(
                ("spec", "secrets", name),
                f'secret {name} is kept under the state key "{key}", which the store can\'t '
                f"hold: {reason}",
                "give the secret a shorter name",
            )
        for field in _READ_ONLY_FIELDS:
            if field in raw:
                yield doc.problem(
                    ("spec", "secrets", name, field),
                    f'"{field}" does not apply to a generated secret: it is always made, '
                    "kept and masked",
                    f'remove "{field}"',
                )
        generate = raw.get("generate")
        charset = generate.get("charset") if isinstance(generate, dict) else None
        if isinstance(charset, str) and not has_template(charset):  # else: not expanded here
            problem = charset_problem(charset)
            if problem is not None:
                yield doc.problem(
                    (*path, "charset"),
                    problem,
                    'give the characters to draw from, e.g. "charset: abcdefghijklmnopqrstuvwxyz'
                    '0123456789"',
                )


def _store_rule(store: Any) -> type[StateStore]:
    """The rules of the step's store; a step without one is held to the ConfigMap's."""
    from runner.state import IN_CLUSTER, STORES, store_class

    return store_class(store if isinstance(store, str) and store in STORES else IN_CLUSTER)


def _state_name_problem(
    doc: Document, path: PathKey, store: Any, state: dict[str, Any]
) -> Problem | None:
    """A fixed state name the store can't use: the store's own rule (runner/state), which
    `run` also asks of a templated name once rendered. Held to the ConfigMap rule without a
    store, as keys are."""
    from runner.state import IN_CLUSTER, STORES, store_class

    name = state.get("name")
    if store == "none" or not isinstance(name, str) or has_template(name):
        return None
    rule = store_class(store if isinstance(store, str) and store in STORES else IN_CLUSTER)
    reason = rule.name_problem(name)
    return None if reason is None else doc.problem((*path, "name"), f'state name "{name}" {reason}')


def _store_has_buckets(store: str) -> bool:
    from runner.state import STORES, store_class

    return store in STORES and store_class(store).needs_bucket


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
        reason = outside_output(target)
        if reason is None:
            continue
        if field == "to":
            name = posixpath.basename(posixpath.normpath(target)) or "app"
            example = name + "/" if target.endswith("/") else name
            hint = f'give a path inside the output folder, e.g. "to: {example}"'
        else:
            hint = 'add a "to:" inside the output folder: it defaults to the "from:" path'
        yield doc.problem(("spec", "output", i, field), f'output target "{target}" {reason}', hint)


def _is_delete(spec: dict[str, Any]) -> bool:
    action = _mapping(spec.get("on")).get("action", "configure")
    return action == "delete" or (isinstance(action, list) and "delete" in action)
