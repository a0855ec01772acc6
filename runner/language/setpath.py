"""Set paths (`manifests[].set`): where in a base document a rendered value goes.

They are written like `query:` paths (`.metadata.name`, `.spec.ports[0]`,
`.metadata.labels."app.kubernetes.io/name"`), so one path syntax serves reading and writing;
no `//` default. `[]` names every element of a list, as in yq's `.spec.users[].name = "x"`:
the rest of the path is set in each element, and an empty or missing list sets nothing (and
nothing is created on the way to it).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from runner.base.value_types import kind_of
from runner.language.query import QueryError, path_segments

__all__ = [
    "EVERY",
    "Segments",
    "SetPathError",
    "format_set_path",
    "parse_set_path",
    "set_path",
]

EVERY = None  # the segment of `[]`: every element of a list
Segments = tuple[str | int | None, ...]


class SetPathError(ValueError):
    """A set path that cannot be applied to a document (a scalar or the wrong container)."""

    def __init__(self, message: str, segments: Segments) -> None:
        super().__init__(message)
        self.message = message
        self.segments = segments

    def __str__(self) -> str:
        return self.message


def parse_set_path(text: str) -> Segments:
    """The keys and indexes of a set path; raises QueryError with the offset of the problem."""
    found = path_segments(text)
    if not found:
        raise QueryError(
            "a set path must name a field at offset 1, e.g. .metadata.name", text, min(1, len(text))
        )
    return tuple(segment for segment, _ in found)


def format_set_path(segments: Segments) -> str:
    """Segments back in the yq style they are written in: .spec.ports[0]."""
    out = ""
    for segment in segments:
        if segment is EVERY:
            out += "[]" if out else ".[]"
        elif isinstance(segment, int):
            out += f"[{segment}]" if out else f".[{segment}]"
        elif segment and all(ch.isalnum() or ch in "_-" for ch in segment):
            out += f".{segment}"
        else:
            out += "." + json.dumps(segment, ensure_ascii=False)
    return out or "."


def set_path(document: Any, segments: Segments, value: object) -> None:
    """Put value at segments in document (in place).

    Missing (or null) mapping entries are created: a mapping, or a list when the next
    segment is an index. An index must exist, or equal the list's length to append. At `[]`
    the rest of the path is set in every element, each getting its own copy of value; a
    missing or null list there, or anything missing on the way to it, sets nothing.
    """
    if not segments:
        raise ValueError("a set path has at least one segment")
    if not _reaches_every(document, segments):
        return
    _set(document, segments, 0, value)


def _reaches_every(document: Any, segments: Segments) -> bool:
    """False when a `[]` is preceded by a missing or null entry: then nothing is set."""
    if EVERY not in segments:
        return True
    current = document
    if current is None:
        return False
    for segment in segments[: segments.index(EVERY)]:
        if isinstance(segment, str) and isinstance(current, dict):
            current = current.get(segment)
        elif isinstance(segment, int) and isinstance(current, list):
            index = segment + len(current) if segment < 0 else segment
            current = current[index] if 0 <= index < len(current) else None
        else:
            return True  # the wrong container: _set says so
        if current is None:
            return False
    return True


def _set(current: Any, segments: Segments, depth: int, value: object) -> None:
    while True:
        segment = segments[depth]
        last = depth == len(segments) - 1
        if segment is EVERY:
            if current is None:
                return
            if not isinstance(current, list):
                raise _wrong_container(segments, depth, current, "a list")
            for index, item in enumerate(current):
                if last:
                    current[index] = copy.deepcopy(value)
                elif _reaches_every(item, segments[depth + 1 :]):
                    if item is None:
                        item = current[index] = _container(segments[depth + 1])
                    _set(item, segments, depth + 1, value)
            return
        new: object = copy.deepcopy(value) if last else _container(segments[depth + 1])
        if isinstance(segment, str):
            if not isinstance(current, dict):
                raise _wrong_container(segments, depth, current, "a mapping")
            if last or (current.get(segment) is None and segments[depth + 1] is not EVERY):
                current[segment] = new
            current = current.get(segment)
        else:
            if not isinstance(current, list):
                raise _wrong_container(segments, depth, current, "a list")
            index = segment + len(current) if segment < 0 else segment
            if index == len(current) and segment >= 0:
                current.append(new)
            elif not 0 <= index < len(current):
                where = format_set_path(segments[:depth])
                raise SetPathError(
                    f"cannot set {format_set_path(segments)}: {where} has {len(current)} "
                    f"item(s), so there is no index {segment} (an index may append only at "
                    f"[{len(current)}])",
                    segments,
                )
            elif last or (current[index] is None and segments[depth + 1] is not EVERY):
                current[index] = new
            current = current[index]
        if last:
            return
        depth += 1


def _container(segment: str | int | None) -> Any:
    """What a missing entry becomes when the path goes on with segment."""
    return {} if isinstance(segment, str) else []


def _wrong_container(segments: Segments, depth: int, found: object, wanted: str) -> SetPathError:
    where = format_set_path(segments[:depth])
    return SetPathError(
        f"cannot set {format_set_path(segments)}: {where} is {kind_of(found)}, not {wanted}",
        segments,
    )
