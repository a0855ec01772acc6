"""yq-style paths (the `query:` key of an input) translated to JMESPath.

Step authors know yq from the bash scripts this runner replaces, so `query:` accepts the
subset of yq that reads a value out of a document:

=====================================  ==========================================
yq-style                               JMESPath emitted
=====================================  ==========================================
``.``                                  ``@``
``.metadata.name``                     ``"metadata"."name"``
``.spec.items[0]`` / ``[-1]``          ``"spec"."items"[0]`` / ``[-1]``
``.spec.items[]``                      ``"spec"."items"[*]``
``.a["key.with.dots"]`` / ``['k']``    ``"a"."key.with.dots"`` / ``"a"."k"``
``.metadata.labels."app.k8s.io/n"``    ``"metadata"."labels"."app.k8s.io/n"``
``.spec.my-field``                     ``"spec"."my-field"``
``.spec.tier // "small"``              ``"spec"."tier" || 'small'``
=====================================  ==========================================

Keys are always emitted as quoted identifiers so that keys such as ``my-field`` or ``1x``,
which are not JMESPath identifiers, still work. Anything beyond this subset belongs in a
``jmespath:`` expression, which :func:`compile_jmespath` accepts verbatim.

It stays one module, past 400 lines: the translator is one small recursive-descent parser,
and `path_segments` (set paths) and `parse_jmespath` (expressions) share its lexing and its
located errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

# jmespath's import is a few milliseconds and `validate` compiles every query anyway.
import jmespath
from jmespath.exceptions import IncompleteExpressionError, JMESPathError, LexerError, ParseError

__all__ = [
    "Query",
    "QueryError",
    "compile_jmespath",
    "compile_query",
    "parse_jmespath",
    "path_segments",
    "translate",
]

_LITERAL_WORDS = {"true": "`true`", "false": "`false`", "null": "`null`"}
# A Functions class's FUNCTION_TABLE: name -> {"signature": ({"types": [...], "variadic": bool?}, ...)}
FunctionTable = Mapping[str, Mapping[str, Sequence[Mapping[str, object]]]]
# Characters that end a path: whitespace before `//`, or the `/` of a glued `.a//"x"`.
_PATH_END = " \t\r\n/"


class QueryError(ValueError):
    """A query that does not parse (or, for raw JMESPath, cannot be evaluated).

    ``message`` is the full human-readable text (it already says "at offset N" when the
    offset is known); ``offset`` is the 0-based character offset in ``expression`` where it
    broke, or None when unknown.
    """

    def __init__(self, message: str, expression: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.offset = offset

    def __str__(self) -> str:
        return self.message

    def caret(self) -> str:
        """The expression with a ``^`` under the offending character, for multi-line errors."""
        if self.offset is None:
            return self.expression
        return f"{self.expression}\n{' ' * self.offset}^"


def _describe(ch: str) -> str:
    """A character as it should appear in an error message."""
    return json.dumps(ch, ensure_ascii=False)


def _is_key_char(ch: str) -> bool:
    """Whether ch may appear in an unquoted key."""
    # yq accepts `-` inside bare keys (`.spec.my-field`); we also accept any Unicode
    # letter or digit because keys are always re-emitted quoted.
    return ch.isalnum() or ch in "_-"


class _Translator:
    """A single-use recursive-descent parser of the yq-style subset; emits JMESPath."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.pos = 0

    # -- helpers -------------------------------------------------------------------------

    def error(self, what: str, offset: int | None = None, hint: str = "") -> QueryError:
        """An error reading "<what> at offset N[; hint]"; the offset defaults to here."""
        at = self.pos if offset is None else offset
        return QueryError(f"{what} at offset {at}" + (f"; {hint}" if hint else ""), self.expr, at)

    def peek(self) -> str:
        """The current character, or "" at the end of the expression."""
        return self.expr[self.pos] if self.pos < len(self.expr) else ""

    def skip_ws(self) -> None:
        """Move past whitespace (allowed around `//` and inside brackets)."""
        while self.pos < len(self.expr) and self.expr[self.pos].isspace():
            self.pos += 1

    # -- grammar -------------------------------------------------------------------------

    def translate(self) -> str:
        """query := path ( "//" (path | literal) )*"""
        self.skip_ws()
        if self.pos == len(self.expr):
            raise self.error("empty query", hint="expected a path such as .metadata.name")
        if self.peek() != ".":
            raise self.error(
                f'expected "." but found {_describe(self.peek())}',
                hint='yq-style paths start with "." (e.g. .metadata.name); '
                "use jmespath: for a JMESPath expression",
            )
        operands = [self.path()]
        while True:
            self.skip_ws()
            if self.pos == len(self.expr):
                break
            if not self.expr.startswith("//", self.pos):
                raise self.error(
                    f"unexpected {_describe(self.peek())}",
                    hint='expected "//" or the end of the query',
                )
            self.pos += 2
            self.skip_ws()
            operands.append(self.operand())
        return " || ".join(operands)

    def single_path(self) -> list[tuple[str | int | None, int]]:
        """The segments of a query that is one path and nothing else (no `//`)."""
        if self.peek() != ".":
            found = "the end of the path" if self.peek() == "" else _describe(self.peek())
            raise self.error(
                f'expected "." but found {found}',
                hint='paths start with "." (e.g. .metadata.name)',
            )
        found_segments = self.segments()
        rest = self.expr[self.pos :]
        if rest.lstrip().startswith("//"):
            raise self.error(
                'unexpected "//"',
                self.pos + len(rest) - len(rest.lstrip()),
                hint="a path here takes no default",
            )
        if rest:
            what = "whitespace" if rest[0].isspace() else _describe(rest[0])
            raise self.error(f"unexpected {what}", hint="expected the end of the path")
        return found_segments

    def operand(self) -> str:
        """The right-hand side of `//`: another path or a literal."""
        ch = self.peek()
        if ch == ".":
            return self.path()
        if ch and ch in "\"'":
            return _string_literal(self.quoted())
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch.isalpha():
            start = self.pos
            while self.pos < len(self.expr) and self.expr[self.pos].isalnum():
                self.pos += 1
            word = self.expr[start : self.pos]
            if word in _LITERAL_WORDS:
                return _LITERAL_WORDS[word]
            raise self.error(
                f'expected a path or a literal after "//" but found {_describe(word)}',
                start,
                hint='quote strings: "text"',
            )
        found = "the end of the query" if ch == "" else _describe(ch)
        raise self.error(f'expected a path or a literal after "//" but found {found}')

    def path(self) -> str:
        """A path emitted as JMESPath: keys quoted, indexes and `[]` as brackets."""
        pieces: list[str] = []
        for segment, _ in self.segments():
            if isinstance(segment, str):
                pieces.append(_key(segment))
            else:
                pieces.append("[*]" if segment is None else f"[{segment}]")
        if not pieces:
            return "@"  # `.` alone is the whole document
        # Keys (quoted identifiers) join with "."; index and projection brackets do not.
        return pieces[0] + "".join("." + p if p.startswith('"') else p for p in pieces[1:])

    def segments(self) -> list[tuple[str | int | None, int]]:
        """path := "." [ key | bracket ] ( "." (key | bracket) | bracket )*

        Each segment (a key, an index, or None for `[]`) with the offset where it starts.
        """
        self.pos += 1  # the leading "."
        found: list[tuple[str | int | None, int]] = []
        ch = self.peek()
        if ch == "" or ch in _PATH_END:
            return found
        found.append(self.segment_after_dot())
        while True:
            ch = self.peek()
            if ch == "" or ch in _PATH_END:
                return found
            if ch == "[":
                start = self.pos
                found.append((self.bracket(), start))
            elif ch == ".":
                self.pos += 1
                # yq also accepts `.a.[0]`; allow it rather than surprise people.
                found.append(self.segment_after_dot())
            elif _is_key_char(ch):  # e.g. `.a[0]b`: the author forgot a dot
                raise self.error(f"unexpected {_describe(ch)}", hint='expected "." or "["')
            else:
                raise self.error(
                    f"unexpected {_describe(ch)}",
                    hint='keys with characters other than letters, digits, "_" and "-" must be '
                    'quoted, e.g. .metadata.labels."app.kubernetes.io/name"',
                )

    def segment_after_dot(self) -> tuple[str | int | None, int]:
        """A key or a bracket right after a ".", with its offset."""
        start = self.pos
        return (self.bracket() if self.peek() == "[" else self.key_after_dot()), start

    def key_after_dot(self) -> str:
        """A bare or quoted key right after a "."."""
        ch = self.peek()
        if ch and ch in "\"'":
            start = self.pos
            key = self.quoted()
            if not key:
                raise self.error('empty key ""', start)
            return key
        start = self.pos
        while self.pos < len(self.expr) and _is_key_char(self.expr[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.error('expected a key after "."')
        return self.expr[start : self.pos]

    def bracket(self) -> str | int | None:
        """bracket := "[" ( "" | integer | quoted key ) "]" with optional inner spaces.

        The key or index, or None for `[]` (every item).
        """
        open_at = self.pos
        self.pos += 1
        self.skip_ws()
        ch = self.peek()
        if ch == "]":
            self.pos += 1
            return None
        piece: str | int
        if ch and ch in "\"'":
            start = self.pos
            piece = self.quoted()
            if not piece:
                raise self.error('empty key ""', start)
        elif ch == "-" or ch.isdigit():
            start = self.pos
            if ch == "-":
                self.pos += 1
            digits_at = self.pos
            while self.pos < len(self.expr) and self.expr[self.pos].isdigit():
                self.pos += 1
            after = self.peek()
            if self.pos == digits_at or (after not in ("]", "") and not after.isspace()):
                raise self.error("expected an integer index", start)
            piece = int(self.expr[start : self.pos])
        elif ch == "":
            raise self.error(f'unclosed "[" (opened at offset {open_at}); expected "]"')
        else:
            raise self.error(
                f'expected an integer index, a quoted key or "]" after "[" '
                f"but found {_describe(ch)}"
            )
        self.skip_ws()
        if self.peek() != "]":
            if self.pos == len(self.expr):
                raise self.error(f'unclosed "[" (opened at offset {open_at}); expected "]"')
            raise self.error(f'expected "]" but found {_describe(self.peek())}')
        self.pos += 1
        return piece

    def quoted(self) -> str:
        """A "double" (JSON escapes) or 'single' (no escapes) quoted string; returns its value."""
        quote, start = self.peek(), self.pos
        self.pos += 1
        if quote == "'":
            end = self.expr.find("'", self.pos)
            if end < 0:
                raise self.error("unterminated string (missing closing ')", start)
            self.pos = end + 1
            return self.expr[start + 1 : end]
        i = self.pos
        while i < len(self.expr) and self.expr[i] != '"':
            i += 2 if self.expr[i] == "\\" else 1
        if i >= len(self.expr):
            raise self.error('unterminated string (missing closing ")', start)
        self.pos = i + 1
        try:
            # strict=False: a raw tab inside quotes is the author's intent, not an error.
            value = json.loads(self.expr[start : i + 1], strict=False)
        except json.JSONDecodeError as exc:  # a bad escape such as "\q"
            raise self.error("invalid escape in string", start + exc.pos) from None
        assert isinstance(value, str)
        return value

    def number(self) -> str:
        """An integer or decimal literal such as 3, -1 or 2.5e3, emitted as a JSON literal."""
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits_at = self.pos
        while self.peek().isdigit():
            self.pos += 1
        is_float = False
        if self.peek() == "." and self.pos > digits_at:
            is_float = True
            self.pos += 1
            frac_at = self.pos
            while self.peek().isdigit():
                self.pos += 1
            if self.pos == frac_at:
                raise self.error("expected digits after the decimal point")
        if self.peek() in ("e", "E") and self.pos > digits_at:
            is_float = True
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            exp_at = self.pos
            while self.peek().isdigit():
                self.pos += 1
            if self.pos == exp_at:
                raise self.error("expected digits in the exponent")
        text = self.expr[start : self.pos]
        if self.pos == digits_at or (self.peek() and self.peek() not in _PATH_END):
            raise self.error(f"invalid number {_describe(self.expr[start : self.pos + 1])}", start)
        value: float | int = float(text) if is_float else int(text)
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            raise self.error("number out of range", start)
        return f"`{json.dumps(value)}`"


def _key(key: str) -> str:
    """A JMESPath quoted identifier: always quoted, so `my-field` or `1x` need no care."""
    return json.dumps(key, ensure_ascii=False)


def _string_literal(value: str) -> str:
    """A JMESPath literal for a string.

    The readable raw form 'text' is used when it is unambiguous: jmespath's raw strings
    only unescape \\' and keep every other backslash, so a value with a quote or a
    backslash goes through a JSON literal instead, with backticks written as \\u0060
    so the literal's own delimiter can never appear inside it.
    """
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    return "`" + json.dumps(value, ensure_ascii=False).replace("`", "\\u0060") + "`"


def translate(expr: str) -> str:
    """Translate a yq-style path to JMESPath source; raises QueryError (with offset) on bad syntax.

    `A // B` becomes `A || B`. Note the difference: yq's `//` falls back only when A is
    null or false, while JMESPath's `||` also falls back when A is an empty string, an
    empty list or an empty object. For input defaults that is usually what an author
    wants (an empty `spec.tier: ""` takes the default), but it is not byte-for-byte yq.
    """
    return _Translator(expr).translate()


def path_segments(expr: str) -> list[tuple[str | int | None, int]]:
    """The segments of a yq-style path (keys, indexes, None for `[]`) with their offsets.

    Only a path: no `//` default, no surrounding whitespace. Raises QueryError with the offset.
    """
    return _Translator(expr).single_path()


@dataclass(frozen=True)
class Query:
    """A compiled query: what the author wrote and the JMESPath it became."""

    source: str
    jmespath: str
    # The compiled expression's search; typed as a callable so this module needs no `typing`
    # import (2-3 ms at start-up) just to say Any.
    _search: Callable[[object], object] = field(repr=False, compare=False)

    def search(self, document: object) -> object:
        """The value the query selects from document, or None when it is missing."""
        try:
            return self._search(document)
        except RecursionError:
            raise QueryError("it nests too deeply to evaluate", self.source) from None
        except JMESPathError as exc:
            # Runtime errors (a function given the wrong type, an unknown function) are
            # only detectable here in jmespath; surface them as the same error type.
            raise QueryError(f"cannot evaluate {self.source!r}: {exc}", self.source) from None


# How deep an expression's tree may be: jmespath evaluates it recursively, a few Python frames
# a level, under Python's limit of 1000 frames. Real expressions are a dozen levels deep.
MAX_DEPTH = 150


@lru_cache(maxsize=512)
def compile_query(expr: str) -> Query:
    """Compile a yq-style path (see translate); cached because steps share queries."""
    source = translate(expr)
    try:
        compiled = jmespath.compile(source)
    except JMESPathError as exc:  # pragma: no cover - translate only emits valid JMESPath
        raise QueryError(
            f"internal error translating {expr!r} to {source!r}: {exc}", expr
        ) from None
    return Query(expr, source, compiled.search)


@lru_cache(maxsize=512)
def compile_jmespath(expr: str) -> Query:
    """Compile a raw JMESPath expression; parse errors become QueryError with their offset.

    Messages carry no "invalid JMESPath" prefix, like translate's: callers add the context.
    """
    return Query(expr, expr, parse_jmespath(expr).search)


def parse_jmespath(
    expr: str, functions: FunctionTable | None = None
) -> jmespath.parser.ParsedResult:
    """jmespath's compiled expression for expr; parse errors become QueryError with their offset.

    `functions` is the table of functions the expression may call (a Functions subclass's
    FUNCTION_TABLE); by default jmespath's built-in ones.
    """
    if not expr.strip():
        raise QueryError("empty expression at offset 0", expr, 0)
    try:
        compiled = jmespath.compile(expr)
    except LexerError as exc:
        offset = exc.lexer_position
        raise QueryError(
            f"{exc.message[:1].lower()}{exc.message[1:]} at offset {offset}", expr, offset
        ) from None
    except IncompleteExpressionError:
        offset = len(expr)
        raise QueryError(f"incomplete expression at offset {offset}", expr, offset) from None
    except ParseError as exc:
        offset = exc.lex_position
        token = "end of expression" if exc.token_type == "EOF" else _describe(str(exc.token_value))
        raise QueryError(f"unexpected {token} at offset {offset}", expr, offset) from None
    except JMESPathError as exc:
        raise QueryError(str(exc), expr) from None
    except RecursionError:
        raise QueryError("expression nests too deeply", expr) from None
    _check_functions(expr, compiled.parsed, functions)
    return compiled


def _check_functions(expr: str, tree: object, table: FunctionTable | None) -> None:
    """Reject unknown functions and wrong argument counts at compile time.

    jmespath only notices these while searching, which would turn a typo in a step file
    into a failure in the middle of a pipeline run instead of a `validate` error.
    """
    if table is None:
        from jmespath.functions import Functions  # already imported by jmespath itself

        table = Functions.FUNCTION_TABLE
    stack: list[tuple[object, int]] = [(tree, 1)]
    while stack:
        current, depth = stack.pop()
        if not isinstance(current, dict):
            continue  # e.g. the integers of a slice node
        if depth > MAX_DEPTH:
            # jmespath parses `a|a|a...` in a loop but evaluates it recursively: refuse it
            # here, where validate sees it, rather than overflow the stack in a run.
            raise QueryError(f"expression nests too deeply (more than {MAX_DEPTH} levels)", expr)
        children = current.get("children") or []
        stack.extend((child, depth + 1) for child in children)
        if current.get("type") != "function_expression":
            continue
        name = str(current["value"])
        found = re.search(rf"\b{re.escape(name)}\s*\(", expr)
        offset = found.start() if found else None
        where = f" at offset {offset}" if offset is not None else ""
        if name not in table:
            raise QueryError(f"unknown function {name}(){where}", expr, offset)
        signature = table[name]["signature"]
        variadic = bool(signature) and bool(signature[-1].get("variadic"))
        optional = bool(signature) and bool(signature[-1].get("optional"))
        given, wanted = len(children), len(signature)
        if given < wanted - optional or (given > wanted and not variadic):
            expected = f"at least {wanted}" if variadic else str(wanted)
            expected = f"{wanted - 1} or {wanted}" if optional else expected
            raise QueryError(
                f"{name}() takes {expected} argument(s), got {given}{where}",
                expr,
                offset,
            )
