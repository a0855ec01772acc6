"""Set paths (`manifests[].set`): where in a base document a rendered value goes.

They are written like `query:` paths (`.metadata.name`, `.spec.ports[0]`,
`.metadata.labels."app.kubernetes.io/name"`), so one path syntax serves reading and writing;
but a set path names exactly one place: no `//` default and no `[]`.
"""

from __future__ import annotations

import json
from typing import Any

from runner.query import QueryError, path_segments
from runner.value_types import kind_of

__all__ = ["Segments", "SetPathError", "format_set_path", "parse_set_path", "set_path"]

Segments = tuple[str | int, ...]


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
    segments: list[str | int] = []
    for segment, offset in found:
        if segment is None:
            raise QueryError(
                f'"[]" at offset {offset} names every item; a set path names one index, e.g. [0]',
                text,
                offset,
            )
        segments.append(segment)
    return tuple(segments)


def format_set_path(segments: Segments) -> str:
    """Segments back in the yq style they are written in: .spec.ports[0]."""
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]" if out else f".[{segment}]"
        elif segment and all(ch.isalnum() or ch in "_-" for ch in segment):
            out += f".{segment}"
        else:
            out += "." + json.dumps(segment, ensure_ascii=False)
    return out or "."


def set_path(document: Any, segments: Segments, value: object) -> None:
    """Put value at segments in document (in place).

    Missing (or null) mapping entries are created: a mapping, or a list when the next
    segment is an index. An index must exist, or equal the list's length to append.
    """
    if not segments:
        raise ValueError("a set path has at least one segment")
    current = document
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        new: object = value if last else ([] if isinstance(segments[depth + 1], int) else {})
        if isinstance(segment, str):
            if not isinstance(current, dict):
                raise _wrong_container(segments, depth, current, "a mapping")
            if last or current.get(segment) is None:
                current[segment] = new
            current = current[segment]
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
            elif last or current[index] is None:
                current[index] = new
            current = current[index]


def _wrong_container(segments: Segments, depth: int, found: object, wanted: str) -> SetPathError:
    where = format_set_path(segments[:depth])
    return SetPathError(
        f"cannot set {format_set_path(segments)}: {where} is {kind_of(found)}, not {wanted}",
        segments,
    )
