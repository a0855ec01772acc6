"""StepTemplates: a Step's `uses:` expanded into one plain Step document before it is checked.

Expansion is a macro step at load time: the template's spec gets the `with:` values in place
of its `${{ params.NAME }}`, the Step's own fields are merged on top, and the result is checked
and built like any Step. So every rule (schema, names, injection) holds for the step as it will
run, and a problem in a template's part points at the template's file, saying which step used
it: the merged document remembers where each node came from.

A template's own relative paths (`workdir`, a manifest's `from`) resolve against the template's
file; a path given as a param value (`workdir: "${{ params.module }}"`) is the Step's, so it
resolves against the Step's file, where it was written.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document, PathKey, format_path
from runner.base.words import closest
from runner.language.interpolation import TemplateError, as_text, references, single_reference
from runner.stepfile.model import MISSING, Input
from runner.stepfile.step_template_library import TEMPLATE_KIND, Library, Template, uses_of

# Fields merged key by key (the using document wins); any other field replaces the template's.
MERGED_BY_KEY = ("env", "inputs", "secrets", "values", "outputs")
_NOT_INHERITED = ("uses", "with", "params")
_MAX_CHAIN = 10  # templates using templates: far deeper than anything readable


# -- expansion ------------------------------------------------------------------------------


@dataclass
class Expansion:
    """A document with its `uses:` chain expanded, the files it was built from, and problems."""

    doc: Document | None  # None when it could not be expanded (problems say why)
    files: list[Path] = field(default_factory=list)  # of the templates, nearest first
    names: list[str] = field(default_factory=list)  # of the templates, nearest first
    problems: list[Problem] = field(default_factory=list)


def expand(doc: Document, file: Path, library: Library) -> Expansion:
    """`doc` (a Step or a StepTemplate) with the templates it uses merged in."""
    return _expand(doc, file, library, ())


def _expand(doc: Document, file: Path, library: Library, chain: tuple[str, ...]) -> Expansion:
    uses = uses_of(doc)
    if uses is None:
        return Expansion(doc)
    found = library.find(uses, doc, file)
    if isinstance(found, Problem):
        return Expansion(None, problems=[found])
    key = f"{found.name} ({found.where})"
    if key in chain:
        loop = " -> ".join((*chain, key))
        return Expansion(
            None,
            problems=[doc.problem(("spec", "uses"), f"templates use each other in a loop: {loop}")],
        )
    if len(chain) >= _MAX_CHAIN:
        message = f"templates use templates more than {_MAX_CHAIN} deep: {' -> '.join(chain)}"
        return Expansion(None, problems=[doc.problem(("spec", "uses"), message)])
    base = _expand(found.doc, found.file, library, (*chain, key))
    if base.doc is None:
        return Expansion(None, problems=base.problems)
    if not isinstance(doc.value["spec"].get("with", {}), dict):
        return Expansion(None)  # the schema says what `with:` should be
    values, problems = bind(doc, found)
    if problems:
        return Expansion(None, problems=problems)
    user = f"{_kind_word(doc)} {_name(doc)} at {doc.file}:{doc.position(('metadata', 'name'))[0]}"
    merged = _merge(doc, file, base.doc, found.file, values, user)
    return Expansion(merged, [found.file, *base.files], [found.name, *base.names])


def _kind_word(doc: Document) -> str:
    return "template" if doc.value.get("kind") == TEMPLATE_KIND else "step"


def _name(doc: Document) -> str:
    metadata = doc.value.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else "?"


def param_input(name: str, raw: Any) -> Input:
    """A param declaration as an Input, for its type/enum/pattern check (`Input.check`)."""
    raw = raw if isinstance(raw, dict) else {}
    kind = raw.get("type") if isinstance(raw.get("type"), str) else None
    enum = tuple(raw["enum"]) if isinstance(raw.get("enum"), list) and raw["enum"] else None
    pattern = raw.get("pattern") if isinstance(raw.get("pattern"), str) else None
    return Input(
        name,
        "",
        "param",
        default=raw.get("default", MISSING),
        required=raw.get("required", "default" not in raw) is not False,
        type=kind,
        enum=enum,
        pattern=pattern,
    )


def bind(doc: Document, template: Template) -> tuple[dict[str, Any], list[Problem]]:
    """The value of each of the template's params for `doc`'s `with:`, or what is wrong."""
    spec = doc.value["spec"]
    given = spec.get("with")
    given = given if isinstance(given, dict) else {}
    declared = {name: param_input(name, raw) for name, raw in template.params.items()}
    problems: list[Problem] = []
    for name in given:
        if name not in declared:
            guess = closest(name, set(declared))
            hint = (
                f'did you mean "{guess}"?'
                if guess
                else "params: " + (", ".join(sorted(declared)) or "none")
            )
            message = f'template {template.name} has no param "{name}"'
            problems.append(doc.problem(("spec", "with", name), message, hint, key=True))
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name not in given:
            if param.required and param.default is MISSING:
                at = ("spec", "with") if "with" in spec else ("spec", "uses")
                message = f'missing param "{name}" of template {template.name} ({template.where})'
                problems.append(doc.problem(at, message, _param_hint(template, name)))
            values[name] = UNSET if param.default is MISSING else param.default
            continue
        value = given[name]
        values[name] = value
        if _holds_template(value):
            continue  # known when the step runs; the merged step's checks see the template
        reason = param.check(value)
        if reason:
            problems.append(doc.problem(("spec", "with", name), f"param {name}: {reason}"))
    return values, problems


def _param_hint(template: Template, name: str) -> str | None:
    raw = template.params.get(name)
    description = raw.get("description") if isinstance(raw, dict) else None
    return f"{name}: {description}" if isinstance(description, str) else None


def _holds_template(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(_holds_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_template(v) for v in value)
    return False


def _merge(
    doc: Document, file: Path, base: Document, base_file: Path, values: dict[str, Any], user: str
) -> MergedDocument:
    merged = MergedDocument(doc.file, doc.index, None, user=doc, used_by=user)
    merged.origin[()] = doc
    template_spec = {k: v for k, v in base.value["spec"].items() if k not in _NOT_INHERITED}
    spec = _substitute(template_spec, values, ("spec",), merged.substituted)
    _rebase_paths(spec, merged.substituted, base_file.parent, file.parent)
    for key in spec:
        merged.origin[("spec", key)] = base
    own = doc.value["spec"]
    for key, value in own.items():
        if key in ("uses", "with"):
            continue
        if key in MERGED_BY_KEY and isinstance(value, dict) and isinstance(spec.get(key), dict):
            for inner in spec[key]:
                merged.origin[("spec", key, inner)] = base
            spec[key] = {**spec[key], **value}
            for inner in value:
                merged.origin[("spec", key, inner)] = doc
        else:
            spec[key] = value
        merged.origin[("spec", key)] = doc
    merged.value = {**doc.value, "spec": spec}
    return merged


def _substitute(
    value: Any, values: dict[str, Any], path: PathKey, marks: dict[PathKey, str | None]
) -> Any:
    """`value` with each `${{ params.NAME }}` replaced; `marks` gets the paths replaced (see
    MergedDocument.substituted)."""
    if isinstance(value, dict):
        # A field that is exactly an optional param the step left out is left out too.
        return {
            k: _substitute(v, values, (*path, k), marks)
            for k, v in value.items()
            if not _is_unset(v, values)
        }
    if isinstance(value, list):
        return [_substitute(v, values, (*path, i), marks) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${{" not in value:
        return value
    try:
        whole = single_reference(value)
        refs = references(value)
    except TemplateError:
        return value  # the merged step's checks report it, at the template's line
    if whole is not None and _param(whole.parts, values) is not _NOT_A_PARAM:
        marks[path] = whole.parts[1]
        return copy.deepcopy(_param(whole.parts, values))
    out, pos = [], 0
    for ref in refs:
        found = _param(ref.parts, values)
        if found is _NOT_A_PARAM:
            continue
        before = value[pos : ref.start]
        # `$$` right before the param's `${{` stood for one `$`: once the param is put in,
        # no `{{` follows it, so it is written as that one `$`.
        dollars = len(before) - len(before.rstrip("$"))
        out += [before[: len(before) - dollars] + "$" * (dollars // 2), as_text(found)]
        pos = ref.end
    if not out:
        return value
    # "" when the text starts with a param: a path that does is the using file's.
    marks[path] = "" if out[0] == "" else None
    return "".join(out) + value[pos:]


_NOT_A_PARAM: Any = object()
UNSET: Any = object()  # an optional param (no default) that `with:` leaves out: null in text


def _is_unset(value: Any, values: dict[str, Any]) -> bool:
    """Whether `value` is exactly `${{ params.NAME }}` of a param that has no value."""
    if not isinstance(value, str) or "${{" not in value:
        return False
    try:
        whole = single_reference(value)
    except TemplateError:
        return False
    return (
        whole is not None
        and len(whole.parts) == 2
        and whole.parts[0] == "params"
        and values.get(whole.parts[1]) is UNSET
    )


def _param(parts: tuple[str, ...], values: dict[str, Any]) -> Any:
    """The value of `params.NAME[.KEY...]`, or _NOT_A_PARAM (another name, an unknown param)."""
    if len(parts) < 2 or parts[0] != "params" or parts[1] not in values:
        return _NOT_A_PARAM
    found = values[parts[1]]
    found = None if found is UNSET else found
    for key in parts[2:]:
        found = found.get(key) if isinstance(found, dict) else None
    return found


def _rebase_paths(
    spec: dict[str, Any], substituted: dict[PathKey, str | None], base: Path, own: Path
) -> None:
    """The template's literal relative paths, made relative to the using file's folder."""
    targets: list[tuple[PathKey, dict[str, Any], str]] = [(("spec", "workdir"), spec, "workdir")]
    manifests = spec.get("manifests")
    if isinstance(manifests, list):
        for i, item in enumerate(manifests):
            if isinstance(item, dict):
                targets.append((("spec", "manifests", i, "from"), item, "from"))
    for path, holder, key in targets:
        text = holder.get(key)
        if not isinstance(text, str) or substituted.get(path) is not None or os.path.isabs(text):
            continue
        if base != own:
            holder[key] = os.path.relpath(os.path.normpath(base / text), own)


class MergedDocument(Document):
    """A Step document built from a template and a using document, each node located in the
    file it came from; problems in the template's part say which step used it."""

    def __init__(self, file: str, index: int, value: Any, *, user: Document, used_by: str) -> None:
        super().__init__(file, index, value)
        self.user = user
        self.used_by = used_by
        self.origin: dict[PathKey, Document] = {}  # the top of each subtree -> its source
        # Strings with a param put in (no exact offsets), with the param's name where the
        # whole value is the param's (a problem with that value is located at the `with:`),
        # "" where the text starts with a param, else None.
        self.substituted: dict[PathKey, str | None] = {}

    def source(self, path: PathKey) -> Document:
        while path not in self.origin and path:
            path = path[:-1]
        return self.origin.get(path, self.user)

    def position(self, path: PathKey) -> tuple[int, int]:
        source = self.source(path)
        return source.position(path) if source is self.user else self.user.position(("spec",))

    def problem(
        self,
        path: PathKey,
        message: str,
        hint: str | None = None,
        offset: int | None = None,
        *,
        key: bool = False,
    ) -> Problem:
        param = self.substituted.get(path)
        given = self.user.value["spec"].get("with")
        if param and isinstance(given, dict) and param in given:
            # At the value as written, under the path it took in the step (which also lets the
            # loader drop it when the schema found that node wrong).
            found = self.user.problem(("spec", "with", param), message, hint)
            return replace(found, path=format_path(path))
        source = self.source(path)
        exact = offset if path not in self.substituted else None
        found = source.problem(path, message, hint, exact, key=key)
        if source is self.user:
            return found
        return replace(found, message=f"{found.message} (used by {self.used_by})")


def param_problems(template: Template) -> Iterator[Problem]:
    """Each param's default (and enum options) must fit its own type, enum and pattern."""
    from runner.stepfile.checks import default_problems

    for name, raw in template.params.items():
        if isinstance(raw, dict):
            yield from default_problems(template.doc, ("spec", "params", name), raw, "param")


def param_paths(template: Template) -> set[str]:
    """The paths of the template's strings that hold a param: checked once it has a value
    (`timeout: "${{ params.timeout }}"` is no duration yet), in each step that uses it."""
    return {format_path(path) for path, _ in _param_strings(template)}


def _param_strings(template: Template) -> Iterator[tuple[PathKey, str]]:
    stack: list[tuple[PathKey, Any]] = [(("spec",), template.spec)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(
                ((*path, k), v) for k, v in value.items() if path != ("spec",) or k != "params"
            )
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, str) and "${{" in value and "params" in value:
            yield path, value


def template_problems(template: Template) -> Iterator[Problem]:
    """What is wrong with a template by itself: `${{ params.X }}` it does not declare.

    (The rest of it is checked as part of each step that uses it, where params have values.)
    """
    declared = set(template.params)
    for path, value in _param_strings(template):
        try:
            refs = references(value)
        except TemplateError:
            continue
        for ref in refs:
            if ref.root == "params" and (len(ref.parts) < 2 or ref.parts[1] not in declared):
                name = ref.parts[1] if len(ref.parts) > 1 else ""
                guess = closest(name, declared)
                hint = (
                    f'did you mean "params.{guess}"?' if guess else "declare it under spec.params"
                )
                yield template.doc.problem(
                    path, f'template {template.name} has no param "{name}"', hint, ref.start
                )
