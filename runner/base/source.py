"""YAML documents loaded into plain Python values, keeping each node's line and column.

PyYAML's constructors throw positions away, so we build the values ourselves, straight from
the parser's event stream, so that every later error can point at `file:line:col`. Scalars
resolve by the YAML 1.2 core schema, so `on:` stays a key and `no`/`off` stay strings (the
"Norway problem" of YAML 1.1, which would turn `on:` into `True:` and `default: no` into False).

Building from events rather than from PyYAML's node graph also keeps hostile files harmless:
the build is iterative (no recursion, so deep nesting can't overflow the stack; libyaml's
own composer segfaults on ~100k nested brackets), nesting deeper than `max_depth` stops the
parse at once (libyaml scans deep flow nesting in quadratic time), and an alias counts as the
whole subtree it stands for, so a "billion laughs" document stops once aliases have
repeated `max_nodes` nodes.

It stays one module, past 400 lines: the event builder, its limits and the position
bookkeeping are one algorithm over one stream of events, and make sense only together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from runner.base.errors import InvalidError, Problem

try:  # the libyaml parser is several times faster; fall back to pure Python where it's absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

PathKey = tuple[str | int, ...]

# Limits for one document / one file. Real step files are a few hundred nodes, 10 levels
# deep and a few KiB; these are far beyond that and far below anything that hurts.
MAX_NODES = 100_000
MAX_DEPTH = 100
MAX_FILE_BYTES = 1 << 20  # 1 MiB, also the largest ConfigMap a step could be shipped in
_TOO_DEEP = "nested too deeply"

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
_STANDARD_TAG = "tag:yaml.org,2002:"
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(path: PathKey) -> str:
    """`("spec", "run", 0, "argv")` -> `spec.run[0].argv`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SIMPLE_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += "[" + _quote(part) + "]"
    return out


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


@dataclass
class Document:
    """One YAML document of a file: its value and the position of every node in it."""

    file: str
    index: int
    value: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Where each mapping key is (the path is the key's value's path).
    key_positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Scalars written on one line whose text maps 1:1 onto their value, with where the value
    # starts inside the node (1 for a quoted scalar): an offset into such a value (a query's
    # bad character) can become a column. Block, folded and escaped scalars are not here.
    offsets: dict[PathKey, int] = field(default_factory=dict)

    def position(self, path: PathKey) -> tuple[int, int]:
        """The 1-based (line, col) of the node at `path`, or of its closest ancestor."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def problem(
        self,
        path: PathKey,
        message: str,
        hint: str | None = None,
        offset: int | None = None,
        *,
        key: bool = False,
    ) -> Problem:
        """A Problem located at `path`.

        `key=True` points at the mapping key rather than its value (unknown fields, bad
        names); `offset` moves the column into a one-line scalar where that is exact.
        """
        if key and path in self.key_positions:
            line, col = self.key_positions[path]
        else:
            line, col = self.position(path)
            if offset is not None and path in self.offsets:
                col += offset + self.offsets[path]
        return Problem(message, self.file, line, col, format_path(path), hint)


def resolve_plain(value: str) -> Any:
    """Resolve a plain scalar by the YAML 1.2 core schema."""
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    try:
        if _INT.match(value):
            return int(value)
        if _INT_OCT.match(value):
            return int(value[2:], 8)
        if _INT_HEX.match(value):
            return int(value[2:], 16)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return float(value) if _INT.match(value) else value
    if _FLOAT.match(value):
        return float(value)
    if value in _FLOAT_SPECIAL:
        return _FLOAT_SPECIAL[value]
    return value


@dataclass(frozen=True)
class Scalars:
    """How plain (unquoted) scalars resolve: as values, and as mapping keys."""

    resolve: Callable[[str], Any]
    key: Callable[[str], str]


YAML_1_2 = Scalars(resolve_plain, str)


# -- building values from events ------------------------------------------------------------

_BAD_KEY: Any = object()  # a key that was reported (duplicate, merge, not a string): drop its value
_LIST = 0
_DICT = 1


class _Abort(Exception):
    """Stop reading the file: the rest can't be read safely (too deep, too large)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Frame:
    """A mapping or sequence being built."""

    __slots__ = (
        "anchor",
        "expect_key",
        "is_key",
        "key",
        "kind",
        "mark",
        "path",
        "start_count",
        "value",
    )

    def __init__(
        self,
        kind: int,
        path: PathKey | None,
        anchor: str | None,
        count: int,
        is_key: bool,
        mark: Any,
    ) -> None:
        self.kind = kind
        self.mark = mark  # where it starts
        self.value: Any = {} if kind == _DICT else []
        self.path = path  # None: a node whose value is dropped (positions aren't kept)
        self.anchor = anchor
        self.start_count = count  # the document's node count before this node
        self.is_key = is_key  # a mapping or sequence used as a mapping key (reported, dropped)
        self.expect_key = True  # mappings: the next node is a key
        self.key: Any = _BAD_KEY  # mappings: the key whose value comes next


class _Builder:
    """Feeds on parser events; yields a Document per YAML document."""

    def __init__(
        self, file: str, max_nodes: int, max_depth: int, scalars: Scalars, located: bool = True
    ) -> None:
        self.file = file
        self.located = located  # False: keep no positions (a request of 20 MB: 1M+ nodes)
        self.scalars = scalars
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.docs: list[Document] = []
        self.problems: list[Problem] = []
        self.index = 0
        self._new_document()

    def _new_document(self) -> None:
        self.doc = Document(self.file, self.index, None)
        self.stack: list[_Frame] = []
        self.count = 0  # nodes so far, each alias counting as the whole subtree it repeats
        self.expanded = 0  # of which, nodes repeated by aliases
        self.has_root = False
        self.empty_root = False
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()

    # -- events ---------------------------------------------------------------------------

    def feed(self, event: Any) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self._scalar(event)
        elif kind is yaml.MappingStartEvent:
            self._start(event, _DICT)
        elif kind is yaml.SequenceStartEvent:
            self._start(event, _LIST)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self._end(event)
        elif kind is yaml.AliasEvent:
            self._alias(event)
        elif kind is yaml.DocumentStartEvent:
            self._new_document()
        elif kind is yaml.DocumentEndEvent:
            if self.has_root and not self.empty_root:
                self.docs.append(self.doc)
            self.index += 1

    def _scalar(self, event: Any) -> None:
        self.count += 1
        path, is_key = self._slot()
        style = event.style or ""
        if is_key:
            merge = event.value == "<<" and not style and event.tag is None
            key = str(event.value) if style else self.scalars.key(event.value)
            self._key(key, event.start_mark, merge=merge)
            self._anchor_done(event.anchor, event.value, 1)
            return
        value = self._scalar_value(event, style, path)
        if path is not None:
            start, end = event.start_mark, event.end_mark
            self.doc.positions[path] = (start.line + 1, start.column + 1)
            quoted = 1 if style in ("'", '"') else 0
            if (
                isinstance(value, str)
                and start.line == end.line
                and end.index - start.index == len(value) + 2 * quoted
            ):
                self.doc.offsets[path] = quoted
        if not self.stack:
            self.empty_root = value is None and not style and event.value == ""
        self._anchor_done(event.anchor, value, 1)
        self._place(value)

    def _scalar_value(self, event: Any, style: str, path: PathKey | None) -> Any:
        tag = event.tag
        if style:  # quoted, literal or folded: always a string
            return event.value
        if tag is None:
            return self.scalars.resolve(event.value)
        if tag == "!" or tag == _STANDARD_TAG + "str":
            return event.value
        if not tag.startswith(_STANDARD_TAG):
            self._tag_problem(tag, event.start_mark, path)
            return event.value
        return self.scalars.resolve(event.value)

    def _start(self, event: Any, kind: int) -> None:
        mark = event.start_mark
        self.count += 1
        if len(self.stack) >= self.max_depth:
            raise _Abort(self._at(mark, f"{_TOO_DEEP} (more than {self.max_depth} levels)"))
        path, is_key = self._slot()
        if is_key:
            path = None
        if path is not None:
            self.doc.positions[path] = (mark.line + 1, mark.column + 1)
        tag = event.tag
        if tag is not None and tag != "!" and not tag.startswith(_STANDARD_TAG):
            self._tag_problem(tag, mark, path)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(kind, path, event.anchor, self.count - 1, is_key, mark))

    def _end(self, event: Any) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self._anchor_done(frame.anchor, frame.value, self.count - frame.start_count)
        if frame.is_key:
            self._report(frame.mark, "mapping keys must be strings")
            self._key_rejected()
            return
        self._place(frame.value)

    def _alias(self, event: Any) -> None:
        name = event.anchor
        mark = event.start_mark
        where, _ = self._slot()
        if name in self.open_anchors:
            self._report(mark, f"recursive alias *{name}", where)
            value, size = None, 1
        elif name not in self.anchors:
            self._report(mark, f"undefined alias *{name}", where)
            value, size = None, 1
        else:
            value, size = self.anchors[name]
        self.count += size
        self.expanded += size
        if self.expanded > self.max_nodes:
            message = f"document too large (aliases expand to more than {self.max_nodes} nodes)"
            raise _Abort(self._at(mark, message))
        path, is_key = self._slot()
        if is_key:
            if isinstance(value, str):
                self._key(value, mark, merge=False)
            else:
                self._report(mark, "mapping keys must be strings")
                self._key_rejected()
            return
        if path is not None:
            self.doc.positions[path] = (mark.line + 1, mark.column + 1)
        self._place(value)

    # -- helpers --------------------------------------------------------------------------

    def _slot(self) -> tuple[PathKey | None, bool]:
        """The path of the node starting now, and whether it is a mapping key."""
        if not self.stack:
            return ((), False) if self.located else (None, False)
        top = self.stack[-1]
        if top.path is None:
            return None, top.kind == _DICT and top.expect_key
        if top.kind == _LIST:
            return (*top.path, len(top.value)), False
        if top.expect_key:
            return None, True
        if top.key is _BAD_KEY:
            return None, False
        return (*top.path, top.key), False

    def _key(self, key: str, mark: Any, *, merge: bool) -> None:
        top = self.stack[-1]
        top.expect_key = False
        path = (*top.path, key) if top.path is not None else None
        if merge:
            self._report(
                mark,
                "YAML merge keys (<<) are not supported",
                top.path,
                "repeat the fields instead",
            )
            top.key = _BAD_KEY
        elif key in top.value:
            first = self.doc.key_positions.get(path, (0, 0))[0] if path is not None else 0
            where = f" (first defined on line {first})" if first else ""
            self._report(mark, f'duplicate key "{key}"{where}', path)
            top.key = _BAD_KEY
        else:
            top.key = key
            if path is not None:
                self.doc.key_positions[path] = (mark.line + 1, mark.column + 1)

    def _key_rejected(self) -> None:
        top = self.stack[-1]
        top.expect_key = False
        top.key = _BAD_KEY

    def _place(self, value: Any) -> None:
        if not self.stack:
            self.doc.value = value
            self.has_root = True
            return
        top = self.stack[-1]
        if top.kind == _LIST:
            top.value.append(value)
            return
        top.expect_key = True
        if top.key is not _BAD_KEY:
            top.value[top.key] = value
        top.key = _BAD_KEY

    def _anchor_done(self, anchor: str | None, value: Any, size: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)

    def _parent_path(self) -> PathKey:
        for frame in reversed(self.stack):
            if frame.path is not None:
                return frame.path
        return ()

    def _tag_problem(self, tag: str, mark: Any, path: PathKey | None) -> None:
        self._report(mark, f"unsupported YAML tag {tag}", path)

    def _report(
        self, mark: Any, message: str, path: PathKey | None = None, hint: str | None = None
    ) -> None:
        where = path if path is not None else self._parent_path()
        self.problems.append(self._at(mark, message, where, hint))

    def _at(self, mark: Any, message: str, path: PathKey = (), hint: str | None = None) -> Problem:
        return Problem(message, self.file, mark.line + 1, mark.column + 1, format_path(path), hint)


# Parser messages and what usually causes them.
_YAML_HINTS = (
    ("tab", "indent with spaces; YAML does not allow tabs for indentation"),
    ("mapping values are not allowed", 'quote a value containing ": ", or check the indentation'),
    ("expected <block end>", "check the indentation of this line against the lines above"),
    ("could not find expected ':'", 'a key needs ": " after it; quote a value that spans lines'),
)


def parse_yaml(
    text: str,
    file: str,
    *,
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    scalars: Scalars | None = None,
    located: bool = True,
) -> tuple[list[Document], list[Problem]]:
    """Parse every document in `text`; malformed YAML becomes a located Problem, not an exception.

    Documents before a syntax error are returned (and checked); the rest of the file is not.
    `located=False` keeps no node positions (problems still have their line and column): for
    data that no later message points into, where they would cost more than the values.
    """
    builder = _Builder(file, max_nodes, max_depth, scalars or YAML_1_2, located)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except _Abort as exc:
        builder.problems.append(exc.problem)
    except yaml.MarkedYAMLError as exc:
        deeper = _libyaml_depth_limit(exc)
        if deeper is not None and deeper < len(text):
            # libyaml (0.2.5 as bundled by PyYAML >= 6.0.2) has a nesting limit of its own, and
            # its scanner reaches it before we see the events of deep flow nesting. Everything
            # before that point nests more deeply than our limit, so parsing just that prefix
            # reports our own message at the place where our limit is crossed.
            docs, problems = parse_yaml(
                text[:deeper], file, max_nodes=max_nodes, max_depth=max_depth, located=located
            )
            if problems and problems[-1].message.startswith(_TOO_DEEP):
                return docs, problems
        builder.problems.append(_syntax_problem(exc, text, file))
    except yaml.YAMLError as exc:  # reader errors: control characters
        builder.problems.append(_reader_problem(exc, text, file))
    return builder.docs, builder.problems


def stream_yaml(stream: BinaryIO, file: str, *, scalars: Scalars | None = None) -> Iterator[Any]:
    """The value of each document of a YAML stream, one at a time, as parse_yaml builds it (no
    positions kept): memory holds the document being built, not the file. Empty documents are
    skipped. The first problem raises InvalidError; a syntax or encoding error is located by
    parsing the whole stream again (from its start), so its message is parse_yaml_bytes'."""
    builder = _Builder(file, MAX_NODES, MAX_DEPTH, scalars or YAML_1_2, located=False)
    try:
        for event in yaml.parse(stream, Loader=_Loader):
            builder.feed(event)
            if builder.problems:
                raise InvalidError(*builder.problems)
            while builder.docs:
                yield builder.docs.pop(0).value
    except _Abort as exc:
        raise InvalidError(exc.problem) from None
    except yaml.YAMLError:
        stream.seek(0)
        _, problems = parse_yaml_bytes(stream.read(), file, scalars=scalars, located=False)
        raise InvalidError(*(problems or [Problem("invalid YAML", file, 1, 1)])) from None


def _libyaml_depth_limit(exc: yaml.MarkedYAMLError) -> int | None:
    """Where libyaml's own nesting limit stopped the scan, if that is what `exc` is."""
    mark = exc.problem_mark
    if mark is None or "maximum nesting depth" not in (exc.problem or ""):
        return None
    return int(mark.index)


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    message = f"invalid YAML: {problem or context or 'malformed YAML'}"
    if problem and context:
        cmark = exc.context_mark
        since = ""
        if cmark is not None and mark is not None and cmark.line != mark.line:
            since = f" started on line {cmark.line + 1}"
        message += f" ({context}{since})"
    hint = next((h for needle, h in _YAML_HINTS if needle in message), None)
    index = getattr(mark, "index", None)
    if isinstance(index, int) and 0 <= index < len(text) and text[index] == "\t":
        hint = _YAML_HINTS[0][1]
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if mark is not None and mark.index >= len(text):
        # At the end of the file: libyaml counts a line after the last one even when the
        # file doesn't end with a line break; point at the end of the last line instead.
        lines = _YAML_BREAK.split(text)
        line, col = len(lines), len(lines[-1]) + 1
    return Problem(message, file, line, col, "", hint)


# What YAML (and libyaml's line numbers) count as line breaks.
_YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _reader_problem(exc: yaml.YAMLError, text: str, file: str) -> Problem:
    position = getattr(exc, "position", None)
    if isinstance(position, int) and 0 <= position <= len(text):
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        character = getattr(exc, "character", None)
        if isinstance(character, str) and len(character) == 1:
            character = ord(character)
        what = f"character U+{character:04X}" if isinstance(character, int) else "a character"
        return Problem(
            f"invalid YAML: {what} is not allowed in YAML text",
            file,
            line,
            col,
            hint="remove control characters; write them as escapes in a quoted string",
        )
    return Problem(f"invalid YAML: {exc}", file, 1, 1)


def read_yaml_file(
    path: Path,
    display: str | None = None,
    *,
    max_bytes: int | None = None,
    scalars: Scalars | None = None,
    located: bool = True,
) -> tuple[list[Document], list[Problem]]:
    """Read and parse a file; unreadable, binary and (with `max_bytes`) huge files are Problems."""
    name = display or str(path)
    data, problems = read_bytes(path, name, max_bytes=max_bytes)
    if data is None:
        return [], problems
    return parse_yaml_bytes(data, name, scalars=scalars, located=located)


def read_bytes(
    path: Path, name: str, *, max_bytes: int | None = None
) -> tuple[bytes | None, list[Problem]]:
    """A file's bytes, or the Problem that stopped us reading them."""
    try:
        with open(path, "rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except OSError as exc:
        return None, [Problem(f"cannot read file: {exc.strerror or exc}", name)]
    if max_bytes is not None and len(data) > max_bytes:
        return None, [Problem(f"file too large (more than {max_bytes} bytes)", name, 1, 1)]
    return data, []


def parse_yaml_bytes(
    data: bytes, name: str, *, scalars: Scalars | None = None, located: bool = True
) -> tuple[list[Document], list[Problem]]:
    """Parse YAML bytes; binary or non-UTF-8 content is a located Problem."""
    nul = data.find(b"\0")
    if nul >= 0:
        line, col = _byte_position(data, nul)
        return [], [Problem("not a text file (it contains NUL bytes)", name, line, col)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(data, exc.start)
        return [], [Problem(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", name, line, col)]
    return parse_yaml(text, name, scalars=scalars, located=located)


def _byte_position(data: bytes, index: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, index) + 1
    col = len(data[line_start:index].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, index) + 1, col


def load_yaml_value(
    data: bytes | str, name: str, *, scalars: Scalars | None = None
) -> tuple[Any, list[Problem]]:
    """The value of a one-document YAML (or JSON) text that is not a step file (a request, a
    file a command wrote, a metadata file, a case file), built with the same limits as step
    files: aliases, nesting and recursion can't exhaust memory or the stack. None for an empty
    text; several documents are a Problem."""
    if isinstance(data, bytes):
        docs, problems = parse_yaml_bytes(data, name, scalars=scalars, located=False)
    else:
        docs, problems = parse_yaml(data, name, scalars=scalars, located=False)
    if problems:
        return None, problems
    if len(docs) > 1:
        return None, [docs[1].problem((), "expected one YAML document, found more")]
    return (docs[0].value if docs else None), []
