"""case.yaml's `ignore:`: volatile fields of YAML and JSON files, left out of the comparison.

    ignore:
      metadata/status.yaml:
        - .lastRun
        - .conditions[].lastTransitionTime
      output/app/deployment.yaml: '.metadata.annotations."example.com/built-at"'

Each key is a file of the expected trees (`output/...` or `metadata/...`); each path is a
yq-style path as in an input's `query:` (`[]`, or `[*]`, stands for every item; the leading `.`
may be left out). The fields are removed from both the expected and the produced file before
they are compared, so a field that is only on one side is ignored too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document
from runner.cases.case_files import TREES

EVERY = None  # the segment of `[]`: every item of a list, every value of a mapping
Segment = str | int | None
FieldPath = tuple[Segment, ...]
Ignored = dict[str, tuple[FieldPath, ...]]  # "metadata/status.yaml" -> its paths

_SUFFIXES = (".yaml", ".yml", ".json")
_STAR = re.compile(r"\[\s*\*\s*\]")


class NotAPath(ValueError):
    """A path that selects no field: it does not parse, or it computes a value."""


def read_ignore(doc: Document) -> tuple[Ignored, list[Problem]]:
    """case.yaml's `ignore:`, parsed, and a located problem for each thing wrong with it."""
    raw = doc.value.get("ignore") if isinstance(doc.value, dict) else None
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        example = "{metadata/status.yaml: [.lastRun]}"
        return {}, [
            doc.problem(("ignore",), f"expected a mapping of file to paths, e.g. {example}")
        ]
    ignored: Ignored = {}
    problems: list[Problem] = []
    for file, paths in raw.items():
        where: tuple[str | int, ...] = ("ignore", file)
        if problem := _file_problem(file):
            problems.append(doc.problem(where, problem))
            continue
        listed = paths if isinstance(paths, list) else [paths]
        parsed = []
        for i, text in enumerate(listed):
            at = (*where, i) if isinstance(paths, list) else where
            if not isinstance(text, str):
                problems.append(doc.problem(at, "expected a path such as .metadata.name"))
                continue
            try:
                parsed.append(parse_path(text))
            except NotAPath as exc:
                problems.append(doc.problem(at, f"{text!r} is not a field path: {exc}"))
        ignored[file] = tuple(parsed)
    return ignored, problems


def _file_problem(file: Any) -> str | None:
    if not isinstance(file, str):
        return "expected a file name"
    parts = Path(file).parts
    if len(parts) < 2 or parts[0] not in TREES or ".." in parts:
        return f"expected a file of the expected trees: {' or '.join(f'{t}/...' for t in TREES)}"
    if Path(file).suffix.lower() not in _SUFFIXES:
        return "fields can be ignored in YAML and JSON files only (.yaml, .yml, .json)"
    return None


def parse_path(text: str) -> FieldPath:
    """`.conditions[].lastTransitionTime` -> ("conditions", EVERY, "lastTransitionTime").

    The syntax is `query:`'s (runner.language.query), read back from the JMESPath it translates to; the
    leading "." may be left out, and `[*]` is `[]`."""
    import jmespath

    from runner.language.query import QueryError, translate

    written = _STAR.sub("[]", text.strip())
    try:
        source = translate(written if written.startswith(".") else f".{written}")
    except QueryError as exc:
        raise NotAPath(exc.message) from None
    path = _segments(jmespath.compile(source).parsed)
    if not path:
        raise NotAPath("it is the whole document; name a field, e.g. .metadata.name")
    return path


def _segments(node: dict[str, Any]) -> FieldPath:
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        return (node["value"],)
    if kind in ("identity", "current"):
        return ()
    if kind == "subexpression":
        return tuple(s for child in children for s in _segments(child))
    if kind == "index_expression":
        return (*_segments(children[0]), children[1]["value"])
    if kind == "projection":
        return (*_segments(children[0]), EVERY, *_segments(children[1]))
    raise NotAPath('"//" picks a value; a path to ignore names a field')


def remove(value: Any, path: FieldPath) -> None:
    """Delete what `path` names inside `value` (in place); a path that names nothing is fine."""
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        keys = list(value) if head is EVERY else [head] if head in value else []
    elif isinstance(value, list):
        if head is EVERY:
            keys = list(range(len(value)))
        elif isinstance(head, int) and -len(value) <= head < len(value):
            keys = [head % len(value)]
        else:
            keys = []
    else:
        return
    if rest:
        for key in keys:
            remove(value[key], rest)
        return
    for key in reversed(keys):  # a list's later items first, so the indices stay right
        del value[key]
