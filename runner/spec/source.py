"""YAML documents loaded into plain Python values, keeping each node's line and column.

PyYAML's node graph carries positions; its constructors throw them away. We build the
values ourselves so every later error can point at `file:line:col`. Scalars resolve by the
YAML 1.2 core schema, so `on:` stays a key and `no`/`off` stay strings (the "Norway problem"
of YAML 1.1, which would turn `on:` into `True:` and `default: no` into `False`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import Problem

try:  # the libyaml parser is several times faster; fall back to pure Python where it's absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_FLOAT_SPECIAL = {
    ".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan"),
    ".Inf": float("inf"), "+.Inf": float("inf"), "-.Inf": float("-inf"), ".NaN": float("nan"),
    ".INF": float("inf"), "+.INF": float("inf"), "-.INF": float("-inf"), ".NAN": float("nan"),
}  # fmt: skip


def format_path(path: PathKey) -> str:
    """`("spec", "run", 0, "argv")` -> `spec.run[0].argv`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


@dataclass
class Document:
    """One YAML document of a file: its value and the position of every node in it."""

    file: str
    index: int
    value: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Where each scalar's text starts inside the node (1 for a quoted scalar), so an offset
    # into a query can become a column.
    quoted: set[PathKey] = field(default_factory=set)

    def position(self, path: PathKey) -> tuple[int, int]:
        """The 1-based (line, col) of the node at `path`, or of its closest ancestor."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(
        self, path: PathKey, message: str, hint: str | None = None, offset: int | None = None
    ) -> Problem:
        """A Problem located at `path`; `offset` moves the column into a one-line scalar."""
        line, col = self.position(path)
        if offset is not None:
            col += offset + (1 if path in self.quoted else 0)
        return Problem(message, self.file, line, col, format_path(path), hint)


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        mark = node.start_mark
        self.doc.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(self.doc.problem(path, "YAML merge keys (<<) are not supported"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                self.problems.append(
                    Problem("mapping keys must be strings", self.doc.file, mark.line + 1,
                            mark.column + 1, format_path(path))
                )
                continue
            key = str(key_node.value)
            if key in result:
                mark = key_node.start_mark
                first = self.doc.positions.get((*path, key), (0, 0))[0]
                self.problems.append(
                    Problem(f'duplicate key "{key}" (first defined on line {first})',
                            self.doc.file, mark.line + 1, mark.column + 1, format_path(path))
                )
                continue
            result[key] = self.build(value_node, (*path, key))
        return result

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        value: str = node.value
        if node.style in ("'", '"'):
            self.doc.quoted.add(path)
            return value
        if node.style in ("|", ">") or node.tag == "tag:yaml.org,2002:str":
            return value
        if not node.tag.startswith("tag:yaml.org,2002:"):
            self.problems.append(self.doc.problem(path, f"unsupported YAML tag {node.tag}"))
            return value
        return resolve_plain(value)


def resolve_plain(value: str) -> Any:
    """Resolve a plain scalar by the YAML 1.2 core schema."""
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value)
    if _INT_OCT.match(value):
        return int(value[2:], 8)
    if _INT_HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        return float(value)
    if value in _FLOAT_SPECIAL:
        return _FLOAT_SPECIAL[value]
    return value


def parse_yaml(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Parse every document in `text`; malformed YAML becomes a located Problem, not an exception."""
    docs: list[Document] = []
    problems: list[Problem] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "malformed YAML"
        if exc.context:
            message = f"{exc.context}: {message}" if exc.problem else exc.context
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return [], [Problem(f"invalid YAML: {message}", file, line, col)]
    except yaml.YAMLError as exc:  # reader errors: bad encoding, control characters
        return [], [Problem(f"invalid YAML: {exc}", file, 1, 1)]
    for index, node in enumerate(nodes):
        if node is None:
            continue
        doc = Document(file, index, None)
        builder = _Builder(doc)
        try:
            doc.value = builder.build(node, ())
        except RecursionError:
            problems.append(Problem("document is nested too deeply", file, 1, 1))
            continue
        problems.extend(builder.problems)
        docs.append(doc)
    return docs, problems


def read_yaml_file(path: Path, display: str | None = None) -> tuple[list[Document], list[Problem]]:
    """Read and parse a file; unreadable files are Problems too."""
    name = display or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [Problem(f"cannot read file: {exc.strerror or exc}", name)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Problem(f"not UTF-8 text (byte {exc.start})", name, 1, 1)]
    return parse_yaml(text, name)
