"""JMESPath expressions of step files (`if:`, `values.*.jmespath`, `waitFor.condition`, ...).

An expression reads a context `{inputs, values, outputs, steps, kratix}` and may call the
functions of :class:`RunnerFunctions` on top of JMESPath's own, the string helpers that bash
scripts reach for (`lower`, `split`, `sha256`, `b64encode`, ...). `validate` needs to know
which names an expression reads before anything runs, so :meth:`Expression.names` lists the
context paths read from the root, each with its offset in the text.

Error messages never quote a value (it may be a secret): they name the expression and the
value's type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError, JMESPathTypeError
from jmespath.lexer import Lexer

from runner.base.value_types import kind_of, type_words
from runner.language.query import QueryError, parse_jmespath
from runner.platform import kratix_yaml

__all__ = [
    "Expression",
    "ExpressionError",
    "Name",
    "RunnerFunctions",
    "compile_expression",
    "truthy",
]


class ExpressionError(QueryError):
    """An expression that does not parse (with its offset) or cannot be evaluated (no offset);
    `hint`: how to write what the author most likely meant."""

    def __init__(
        self, message: str, expression: str, offset: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, expression, offset)
        self.hint = hint


class _FunctionFailed(Exception):
    """A runner function refused its argument; the message names no value."""


class RunnerFunctions(functions.Functions):
    """JMESPath's functions plus the runner's string and encoding helpers."""

    @functions.signature({"types": ["string"]})
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @functions.signature({"types": ["string"]})
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, s: str, old: str, new: str) -> str:
        return s.replace(old, new)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, s: str, sep: str) -> list[str]:
        if not sep:
            raise _FunctionFailed("split() needs a non-empty separator")
        return s.split(sep)

    @functions.signature({"types": ["string"]})
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @functions.signature({"types": ["string"]})
    def _func_sha256(self, s: str) -> str:
        import hashlib

        return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()

    @functions.signature({"types": ["string"]})
    def _func_b64encode(self, s: str) -> str:
        import base64

        return base64.b64encode(s.encode("utf-8", "surrogatepass")).decode("ascii")

    @functions.signature({"types": ["string"]})
    def _func_b64decode(self, s: str) -> str:
        import base64
        import binascii

        # `base64` wraps its output at 76 columns: the line breaks are not part of the data.
        compact = "".join(s.split())
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
            raise _FunctionFailed("b64decode() was given a string that is not base64") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _FunctionFailed("b64decode() decoded bytes that are not UTF-8 text") from None

    @functions.signature({"types": []})
    def _func_to_yaml(self, value: object) -> str:
        text = kratix_yaml.dump(value)
        # PyYAML's Python emitter ends a lone plain scalar with a document end marker (libyaml's
        # does not); as text it is noise. Block scalar lines are indented, so this is the marker.
        return text[: -len("...\n")] if text.endswith("\n...\n") else text

    @functions.signature(
        {"types": ["string"]},
        {"types": ["number"]},
        {"types": ["number"], "optional": True},
    )
    def _func_substr(self, s: str, start: float, *length: float) -> str:
        begin = _count("substr()", "start", start)
        if not length:
            return s[begin:]
        return s[begin : begin + _count("substr()", "length", length[0])]

    @functions.signature({"types": ["string"]}, {"types": ["number"]})
    def _func_shorten(self, s: str, n: float) -> str:
        limit = _count("shorten()", "n", n)
        if limit < SHORTEN_MIN:
            raise _FunctionFailed(
                f"shorten() needs n of at least {SHORTEN_MIN}: it keeps room for "
                '"-" and 8 hex digits of a hash'
            )
        return shorten(s, limit)

    def _validate_arguments(self, args: Any, signature: Any, function_name: str) -> Any:
        # jmespath has no optional arguments: a trailing `optional` one may be left out.
        if signature and signature[-1].get("optional") and len(args) == len(signature) - 1:
            signature = signature[:-1]
        return super()._validate_arguments(args, signature, function_name)

    @functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: object, fallback: object) -> object:
        # Only null falls back: "" and false are values an author may mean (use || for those).
        return fallback if value is None else value


SHORTEN_MIN = 10  # room for one character of s, "-" and 8 hex digits


def shorten(s: str, n: int) -> str:
    """s when it has at most n characters, else its first n-9, "-", and 8 hex digits of the
    SHA-256 of the whole of s: as long as n, stable, and different for different s."""
    if len(s) <= n:
        return s
    import hashlib

    digest = hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{s[: n - 9]}-{digest[:8]}"


def _count(function: str, name: str, value: float) -> int:
    """A number argument that must be a whole number, zero or more."""
    if value != value or value in (float("inf"), float("-inf")) or int(value) != value:
        raise _FunctionFailed(f"{function} needs a whole number for {name}")
    if value < 0:
        raise _FunctionFailed(f"{function} needs {name} of 0 or more, not a negative number")
    return int(value)


_FUNCTIONS = RunnerFunctions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)


@dataclass(frozen=True)
class Name:
    """A context path an expression reads from the root, e.g. ("inputs", "name")."""

    path: tuple[str, ...]
    offset: int  # where the path's first name starts in the expression


@dataclass(frozen=True)
class Expression:
    """A compiled expression: its text, the names it reads, and its evaluation."""

    source: str
    _names: tuple[Name, ...] = field(repr=False)
    _parsed: Any = field(repr=False, compare=False)
    # It reads the context as a whole (`@`, `*.token`, `values(@)`), not only by names: what
    # it may reach can't be told from its names (runner/stepfile/sensitivity.py).
    reads_whole: bool = False

    def names(self) -> tuple[Name, ...]:
        """The context paths read from the root, in the order they are evaluated."""
        return self._names

    def evaluate(self, context: Mapping[str, object]) -> object:
        """The expression's value in context; raises ExpressionError when it cannot be computed."""
        try:
            return self._parsed.search(context, options=_OPTIONS)
        except JMESPathTypeError as exc:
            expected = type_words(_JMESPATH_TYPES.get(t, t) for t in exc.expected_types)
            raise self._error(
                f"{exc.function_name}() expects {expected}, not {kind_of(exc.current_value)}"
            ) from None
        except _FunctionFailed as exc:
            raise self._error(str(exc)) from None
        except JMESPathError as exc:  # e.g. sort() of mixed types
            raise self._error(str(exc).splitlines()[0]) from None
        except RecursionError:
            raise self._error("the value nests too deeply") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            # jmespath's own functions on values it does not expect (e.g. a huge number).
            raise self._error(f"a function failed ({type(exc).__name__})") from None

    def _error(self, what: str) -> ExpressionError:
        return ExpressionError(f"cannot evaluate {self.source!r}: {what}", self.source)


# jmespath's type names that are not JSON types, in words.
_JMESPATH_TYPES = {
    "expref": "an expression (&name)",
    "array-string": "a list of strings",
    "array-number": "a list of numbers",
}


@lru_cache(maxsize=512)
def compile_expression(text: str) -> Expression:
    """Compile an expression; parse errors and unknown functions raise ExpressionError."""
    try:
        parsed = parse_jmespath(text, RunnerFunctions.FUNCTION_TABLE)
    except QueryError as exc:
        hint = _function_hint(exc.message) or _hint(text)
        raise ExpressionError(exc.message, exc.expression, exc.offset, hint) from None
    try:
        names, whole = _root_names(text, parsed.parsed)
        negated = _negated_path(parsed.parsed)
    except RecursionError:  # jmespath parsed it, but its tree is deeper than we walk
        raise ExpressionError("expression nests too deeply", text) from None
    if negated is not None:
        raise ExpressionError(
            f"!{negated} applies ! to {negated.split('.')[0]} alone, then reads the rest of the "
            "path from true or false",
            text,
            text.find("!"),
            f"write !({negated})",
        )
    return Expression(text, names, parsed, whole)


# `steps.check-db.outputs.x`: JMESPath reads `-` as an operator, so such a name needs quotes.
_DASHED_STEP = re.compile(r"steps\.([A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)+)")


_UNKNOWN_FUNCTION = re.compile(r"unknown function ([A-Za-z_][A-Za-z0-9_]*)\(\)")


def _function_hint(message: str) -> str | None:
    """Did you mean the closest function, for `shortn(...)`."""
    unknown = _UNKNOWN_FUNCTION.match(message)
    if unknown is None:
        return None
    import difflib

    close = difflib.get_close_matches(unknown.group(1), list(RunnerFunctions.FUNCTION_TABLE), n=1)
    return f"did you mean {close[0]}()?" if close else None


def _hint(text: str) -> str | None:
    """How to write a common mistake that does not parse."""
    dashed = _DASHED_STEP.search(text)
    if dashed:
        return f'quote a name with "-": steps."{dashed.group(1)}"'
    return None


def _negated_path(node: _Node) -> str | None:
    """`a.b` for `!a.b` (read by JMESPath as `(!a).b`), anywhere in the tree; else None."""
    children = [c for c in node.get("children") or () if isinstance(c, dict)]
    if (
        node.get("type") == "subexpression"
        and children
        and children[0].get("type") == "not_expression"
    ):
        inner = [c for c in children[0].get("children") or () if isinstance(c, dict)]
        parts = [_field_name(n) for n in inner + children[1:]]
        if all(parts):
            return ".".join(p for p in parts if p)
    for child in children:
        found = _negated_path(child)
        if found is not None:
            return found
    return None


def _field_name(node: _Node) -> str | None:
    if node.get("type") == "field":
        return str(node["value"])
    if node.get("type") == "subexpression":
        parts = [_field_name(c) for c in node.get("children") or ()]
        return ".".join(p for p in parts if p) if all(parts) else None
    return None


def truthy(value: object) -> bool:
    """JMESPath's truth: false, null, "", [] and {} are false; everything else (0 too) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, tuple, Mapping)):
        return len(value) > 0
    return True


# -- the names an expression reads ----------------------------------------------------------

# What a node's value is, seen from the root: a path and where its first name is, or None
# when the node is evaluated against something else (a projected element, a pipe's left side).
_Rooted = tuple[tuple[str, ...], int | None] | None
_Node = Mapping[str, Any]

# Nodes whose right side (and filter condition) is evaluated against each element of the left.
_PROJECTIONS = {"projection", "value_projection", "filter_projection"}


def _root_names(text: str, tree: _Node) -> tuple[tuple[Name, ...], bool]:
    """The rooted paths the tree reads, and whether it reads the root as a whole: walk it,
    tracking what each node is evaluated against."""
    offsets = _field_offsets(text, tree)
    found: list[Name] = []
    whole: list[bool] = []

    def record(rooted: _Rooted) -> None:
        if rooted is not None and rooted[0]:
            found.append(Name(rooted[0], rooted[1] or 0))
        elif rooted is not None:
            whole.append(True)

    def visit(node: _Node, base: _Rooted) -> _Rooted:
        """The rooted path node's value is, recording every rooted path it consumes."""
        kind = node.get("type")
        children: Sequence[_Node] = [c for c in node.get("children") or () if isinstance(c, dict)]
        if kind == "field":
            if base is None:
                return None
            path, offset = base
            return (*path, str(node["value"])), (offset if path else offsets.get(id(node)))
        if kind in ("current", "identity"):
            return base
        if kind == "subexpression":  # a.b.c: each child is evaluated against the one before
            rooted = visit(children[0], base)
            for child in children[1:]:
                rooted = visit(child, rooted)
            return rooted
        if kind == "index_expression" or kind == "flatten":
            record(visit(children[0], base))
            for child in children[1:]:
                visit(child, None)
            return None
        if kind in _PROJECTIONS or kind == "pipe":
            record(visit(children[0], base))
            for child in children[1:]:
                record(visit(child, None))
            return None
        if kind == "expref":  # &name: applied to each element by sort_by, max_by, ...
            for child in children:
                record(visit(child, None))
            return None
        # Functions, comparisons, and/or/not, multi-selects: children see the current node.
        for child in children:
            record(visit(child, base))
        return None

    record(visit(tree, ((), None)))
    return tuple(found), bool(whole)


def _field_offsets(text: str, tree: _Node) -> dict[int, int]:
    """The offset of each field node (by id), pairing them with the lexer's identifiers.

    jmespath's AST has no positions; its lexer has. Field nodes, taken in source order, are
    exactly the identifier tokens that are neither function names (before "(") nor keys of
    a multi-select hash (before ":").
    """
    tokens = list(Lexer().tokenize(text))
    starts = [
        token["start"]
        for token, after in pairwise(tokens)
        if token["type"] in ("unquoted_identifier", "quoted_identifier")
        and after["type"] not in ("lparen", "colon")
    ]
    fields = list(_fields_in_source_order(tree))
    if len(fields) != len(starts):  # pragma: no cover - a jmespath whose AST differs
        return {}
    return {id(node): start for node, start in zip(fields, starts, strict=True)}


def _fields_in_source_order(node: _Node) -> Iterator[_Node]:
    if node.get("type") == "field":
        yield node
    children = [c for c in node.get("children") or () if isinstance(c, dict)]
    if node.get("type") == "filter_projection":  # left[?condition].right
        children = [children[0], children[2], children[1]]
    for child in children:
        yield from _fields_in_source_order(child)
