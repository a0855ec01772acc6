"""The rules of the Promise language that a schema can't express: expressions parse and read
names that exist where they are used; values, outputs and manifests give one source each; set
paths parse (`[]` included); manifests stay inside the output folder; destinations don't
select one folder twice.

Like checks.py, these read the raw document and assume nothing about its shape. References to
other steps' outputs (`steps.NAME.outputs.X`) are collected here and checked by the loader once
every step file is read (stepfile/references.py).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document, PathKey
from runner.language.expressions import ExpressionError, compile_expression
from runner.language.interpolation import has_template
from runner.language.query import QueryError
from runner.language.setpath import parse_set_path
from runner.stepfile import sources
from runner.stepfile.names import Scope, name_problem

_SOURCES = ("document", "documents", "from", "file")
_DOES_SOMETHING = (
    "run",
    "dryRun",
    "manifests",
    "status",
    "outputs",
    "output",  # copying files the step brings (its workdir) to the output is a step's work
    "destinations",
    "waitFor",
    "suspend",
)


@dataclass(frozen=True)
class StepReference:
    """A `steps.STEP.outputs.NAME` read at `path` (offset into the scalar, where known)."""

    doc: Document
    path: PathKey
    offset: int | None
    step: str
    output: str
    sink: str | None = None  # where its text goes, when a sensitive output may not go there
    via: str | None = None  # the value or output of the reading step that carries it


def step_scope(doc: Document, spec: dict[str, Any]) -> Scope:
    """The names of one step: what its templates and expressions may read."""
    metadata = doc.value.get("metadata") if isinstance(doc.value, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    outputs = _mapping(spec.get("outputs"))
    return Scope(
        step=name if isinstance(name, str) else "",
        inputs=frozenset(_mapping(spec.get("inputs"))),
        secrets=frozenset(_mapping(spec.get("secrets"))),
        values=frozenset(_mapping(spec.get("values"))),
        outputs=frozenset(outputs),
    )


def language_problems(
    doc: Document, spec: dict[str, Any], scope: Scope, refs: list[StepReference]
) -> Iterator[Problem]:
    """Every rule of the language broken by one step's spec; `refs` collects step references."""
    check = _Checker(doc, scope, refs)
    yield from check.values(_mapping(spec.get("values")))
    yield from check.expression(("spec", "if"), spec.get("if"), scope)
    for group in ("run", "dryRun"):
        commands = spec.get(group)
        for i, command in enumerate(commands if isinstance(commands, list) else ()):
            if isinstance(command, dict):
                yield from check.expression(("spec", group, i, "if"), command.get("if"), scope)
    results = scope.after_commands(outputs=scope.outputs)
    yield from check.outputs(_mapping(spec.get("outputs")))
    yield from check.manifests(spec.get("manifests"), results)
    yield from _destination_problems(doc, spec.get("destinations"))
    yield from sources.output_problems(doc, spec, check.expression, results)
    for field, key in (("waitFor", "condition"), ("suspend", "if")):
        raw = _mapping(spec.get(field))
        yield from check.expression(("spec", field, key), raw.get(key), results)
    if not any(field in spec for field in _DOES_SOMETHING):
        yield doc.problem(
            ("spec",),
            "the step does nothing",
            "give it run, manifests, status, outputs, output, destinations, waitFor or suspend",
        )


def reference_problem(
    doc: Document, path: PathKey, offset: int | None, parts: tuple[str, ...], scope: Scope,
    refs: list[StepReference], *, template: bool, sink: str | None = None,
) -> Problem | None:  # fmt: skip
    """What is wrong with one name read at `path`; a step reference is collected for later.
    `sink`: what the text read here becomes, where a sensitive output may not go."""
    problem = name_problem(parts, scope, template=template)
    if problem is None:
        if parts[0] == "steps" and len(parts) >= 4:
            refs.append(StepReference(doc, path, offset, parts[1], parts[3], sink=sink))
        return None
    message, hint = problem
    return doc.problem(path, message, hint, offset=offset)


def scalar_offset(text: str, offset: int | None) -> int | None:
    """An offset into a scalar, kept only where it maps to a column: on the first line."""
    if offset is None or "\n" in text[:offset]:
        return None
    return offset


def outside_output(target: str) -> str | None:
    """Why `target` is not a path inside the output folder, or None."""
    if target.startswith("/"):
        return "is absolute: targets are relative to the output folder"
    normal = posixpath.normpath(target)
    if normal == ".." or normal.startswith("../"):
        return "is outside the output folder"
    return None


class _Checker:
    def __init__(self, doc: Document, scope: Scope, refs: list[StepReference]) -> None:
        self.doc, self.scope, self.refs = doc, scope, refs

    def expression(self, path: PathKey, text: Any, scope: Scope) -> Iterator[Problem]:
        if not isinstance(text, str) or not text:
            return
        try:
            expression = compile_expression(text)
        except ExpressionError as exc:
            offset = scalar_offset(text, exc.offset)
            yield self.doc.problem(
                path, f"invalid expression: {exc.message}", exc.hint, offset=offset
            )
            return
        for name in expression.names():
            offset = scalar_offset(text, name.offset)
            yield from self._name(path, offset, name.path, scope, template=False)

    def _name(
        self, path: PathKey, offset: int | None, parts: tuple[str, ...], scope: Scope, *,
        template: bool,
    ) -> Iterator[Problem]:  # fmt: skip
        problem = reference_problem(
            self.doc, path, offset, parts, scope, self.refs, template=template
        )
        if problem is None:
            return
        # A value read before it is computed is an ordering mistake, not an unknown name.
        if parts[0] == "values" and len(parts) > 1 and parts[1] in self.scope.values:
            yield self.doc.problem(
                path,
                f'value "{parts[1]}" is computed after this one: values are computed in order',
                f'move "{parts[1]}" above it',
                offset=offset,
            )
            return
        yield problem

    def values(self, values: dict[str, Any]) -> Iterator[Problem]:
        seen: list[str] = []
        for name, raw in values.items():
            path: PathKey = ("spec", "values", name)
            if not isinstance(raw, dict):
                continue
            here = self.scope.with_values(frozenset(seen))
            seen.append(name)
            lookup, expression = "from" in raw, "jmespath" in raw
            if lookup == expression:
                yield self.doc.problem(
                    path,
                    "a value is either a lookup (from) or an expression (jmespath), not both"
                    if lookup
                    else "a value needs from (a lookup) or jmespath (an expression)",
                    'e.g. "{from: inputs.size, map: {small: 1, large: 3}}"',
                    key=True,
                )
                continue
            if expression:
                for field in ("map", "default"):
                    if field in raw:
                        yield self.doc.problem(
                            (*path, field), f"{field} goes with from, not jmespath", key=True
                        )
                yield from self.expression((*path, "jmespath"), raw["jmespath"], here)
            elif isinstance(raw["from"], str):
                parts = tuple(raw["from"].split("."))
                yield from self._name((*path, "from"), None, parts, here, template=True)

    def outputs(self, outputs: dict[str, Any]) -> Iterator[Problem]:
        seen: list[str] = []
        for name, raw in outputs.items():
            path: PathKey = ("spec", "outputs", name)
            if not isinstance(raw, dict):
                continue
            here = self.scope.after_commands(outputs=frozenset(seen))
            seen.append(name)
            if "query" in raw and "jmespath" in raw:
                yield self.doc.problem(path, "give query or jmespath, not both", key=True)
            elif "file" not in raw and "query" in raw:
                yield self.doc.problem((*path, "query"), "query reads a file: add file:", key=True)
            elif "file" not in raw and "jmespath" not in raw:
                yield self.doc.problem(
                    path,
                    "an output needs a file to read or a jmespath expression",
                    'e.g. "{file: outputs.json, query: .url.value}"',
                    key=True,
                )
            elif "file" not in raw:
                yield from self.expression((*path, "jmespath"), raw["jmespath"], here)

    def manifests(self, manifests: Any, scope: Scope) -> Iterator[Problem]:
        for i, raw in enumerate(manifests if isinstance(manifests, list) else ()):
            if not isinstance(raw, dict):
                continue
            path: PathKey = ("spec", "manifests", i)
            given = [k for k in _SOURCES if k in raw]
            if len(given) != 1:
                yield self.doc.problem(
                    path,
                    f"give one of document, documents, from or file, not {' and '.join(given)}"
                    if given
                    else "a manifest needs document, documents, from or file",
                )
            if "set" in raw and "from" not in raw and "file" not in raw:
                yield self.doc.problem(
                    (*path, "set"), "set changes a base file: it goes with from or file", key=True
                )
            for key in _mapping(raw.get("set")):
                try:
                    parse_set_path(key)
                except QueryError as exc:
                    yield self.doc.problem(
                        (*path, "set", key), f"invalid set path: {exc.message}", key=True
                    )
            yield from self.expression((*path, "if"), raw.get("if"), scope)
            yield from self._target((*path, "path"), raw.get("path"))
            yield from self._base((*path, "from"), raw.get("from"))
            yield from sources.written_file_problems(self.doc, (*path, "file"), raw.get("file"))
            yield from sources.whole_document_problems(
                self.doc, (*path, "document"), raw.get("document")
            )

    def _target(self, path: PathKey, target: Any) -> Iterator[Problem]:
        if not isinstance(target, str) or "${{" in target:
            return  # a templated path is checked when it is rendered
        reason = outside_output(target)
        if reason is None and target.endswith("/"):
            reason = "names a folder: a manifest is a file"
        if reason:
            name = posixpath.basename(posixpath.normpath(target)) or "app"
            name = name if "." in name else name + ".yaml"
            yield self.doc.problem(
                path, f'manifest path "{target}" {reason}', f'e.g. "path: app/{name}"'
            )

    def _base(self, path: PathKey, base: Any) -> Iterator[Problem]:
        if not isinstance(base, str) or not base:
            return
        if has_template(base):  # the request picks the file: its folder must be there
            yield from sources.picked_path_problems(
                self.doc, path, base, Path(self.doc.file).parent, "this step file's folder"
            )
            return
        file = Path(self.doc.file).parent / base
        if not file.is_file():
            yield self.doc.problem(
                path,
                f'base file "{base}" not found',
                "the path is relative to this step file's folder",
            )
            return
        shown = posixpath.join(posixpath.dirname(self.doc.file), base)
        yield from sources.base_file_problems(self.doc, path, file, shown)


def _destination_problems(doc: Document, destinations: Any) -> Iterator[Problem]:
    """Kratix refuses two selectors for one folder (work_creator.go ParseDestinationSelectors)."""
    seen: dict[str, int] = {}
    for i, raw in enumerate(destinations if isinstance(destinations, list) else ()):
        if not isinstance(raw, dict):
            continue
        directory = raw.get("directory", ".")
        if not isinstance(directory, str) or "${{" in directory:
            continue
        folder = posixpath.normpath(directory) if directory else "."
        if folder in seen:
            what = "the whole output" if folder == "." else f'directory "{folder}"'
            yield doc.problem(
                ("spec", "destinations", i),
                f"{what} is already selected by destinations[{seen[folder]}]",
                "Kratix refuses two selectors for one folder: merge their matchLabels",
            )
        seen.setdefault(folder, i)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
