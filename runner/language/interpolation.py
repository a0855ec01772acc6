"""`${{ ... }}` templates in argv items, env values, workdir, state names and status values.

A template holds only dotted names (`${{ inputs.name }}`, `${{ kratix.object.namespace }}`):
no filters, no expressions. That keeps rendering predictable and lets `validate` check every
reference statically. Before `{{`, `$$` stands for one `$`: `$${{` is a literal `${{`
(`$${{ x }}` renders as `${{ x }}` and is no reference), so a workflow text with its own
`${{ }}` can be written where templates work, and `$$${{ x }}` is a `$` and then x's value.
Any text can be written: double each `$` of a run right before `{{`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from runner.base.value_types import kind_of

__all__ = [
    "Reference",
    "TemplateError",
    "has_template",
    "lookup",
    "references",
    "render",
    "render_path",
    "single_reference",
]

_OPEN = "${{"
_ESCAPE = "$"  # `$${{` is a literal `${{`
_CLOSE = "}}"
# One identifier: inputs may be named with "-" (INPUT_<NAME> maps it to "_").
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")


class TemplateError(ValueError):
    """A template that does not parse, or a reference with no value when rendering.

    ``message`` is the full human-readable text; ``offset`` is the 0-based offset in
    ``text`` where the problem is, or None when unknown.
    """

    def __init__(self, message: str, text: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.offset = offset

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Reference:
    """One `${{ name }}` in a text."""

    expr: str  # the dotted name, whitespace-stripped, e.g. "inputs.name"
    start: int  # offset of "${{" in the text
    end: int  # offset just past "}}"

    @property
    def root(self) -> str:
        """The first name: "inputs", "kratix" or whatever the author wrote."""
        return self.expr.split(".", 1)[0]

    @property
    def parts(self) -> tuple[str, ...]:
        """The names along the path, e.g. ("kratix", "object", "namespace")."""
        return tuple(self.expr.split("."))


@lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[tuple[str, ...], tuple[Reference, ...]]:
    """Split text into literal pieces and references; pieces has one more item than refs.

    Cached: the same env/argv/status strings are rendered for every step and command.
    Only successful parses are cached (lru_cache does not cache exceptions). A `$${{` is
    literal text: its piece holds `${{`.
    """
    pieces: list[str] = []
    refs: list[Reference] = []
    piece: list[str] = []  # the literal text since the last reference
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            piece.append(text[pos:])
            pieces.append("".join(piece))
            return tuple(pieces), tuple(refs)
        # Before `{{`, `$$` stands for one `$`: an odd run of `$` ends in a template, an even
        # one is all text (`$${{` is `${{`, `$$${{ x }}` is `$` and x).
        first = start
        while first > pos and text[first - 1] == _ESCAPE:
            first -= 1
        run = start - first + 1
        if run > 1:
            piece += [text[pos:first], _ESCAPE * (run // 2)]
            if run % 2 == 0:
                piece.append(_OPEN[1:])
                pos = start + len(_OPEN)
                continue
            pos = start
        inner_start = start + len(_OPEN)
        inner_start = start + len(_OPEN)
        close = text.find(_CLOSE, inner_start)
        if close < 0:
            raise TemplateError(
                f'unterminated "${{{{" at offset {start}; a template ends with "}}}}"', text, start
            )
        inner = text[inner_start:close]
        expr = inner.strip()
        if not expr:
            raise TemplateError(
                f'empty template "${{{{ }}}}" at offset {start}; expected a name such as '
                "${{ inputs.name }}",
                text,
                start,
            )
        expr_at = inner_start + (len(inner) - len(inner.lstrip()))
        matched = _NAME.match(expr)
        if matched is None or matched.end() != len(expr):
            bad = expr_at + (matched.end() if matched else 0)
            while bad < close and text[bad].isspace():  # point at what is wrong, not a space
                bad += 1
            raise TemplateError(
                f"unsupported template expression {expr!r} at offset {bad}: only dotted names "
                "are supported, e.g. ${{ inputs.name }}",
                text,
                bad,
            )
        piece.append(text[pos:start])
        pieces.append("".join(piece))
        piece = []
        refs.append(Reference(expr, start, close + len(_CLOSE)))
        pos = close + len(_CLOSE)


def references(text: str) -> list[Reference]:
    """All references in text, in order; raises TemplateError for a malformed template."""
    return list(_parse(text)[1])


def single_reference(text: str) -> Reference | None:
    """The reference when text is exactly one `${{ name }}` and nothing else, else None."""
    if _OPEN not in text:
        return None
    pieces, refs = _parse(text)
    return refs[0] if len(refs) == 1 and pieces == ("", "") else None


def has_template(text: str) -> bool:
    """Whether text may contain a template (a cheap check before parsing; true for `$${{`
    too, whose rendering drops the `$`)."""
    return _OPEN in text


def render(text: str, context: Mapping[str, object]) -> str:
    """Replace each reference with its value looked up by parts in nested mappings.

    Strings are inserted as they are, None as "", other values (numbers, booleans, lists,
    objects) as compact JSON, so True renders as "true". A text that is exactly one
    reference still renders to a string. A missing name raises TemplateError.
    """
    if _OPEN not in text:
        return text
    pieces, refs = _parse(text)
    out = [pieces[0]]
    for ref, piece in zip(refs, pieces[1:], strict=True):
        out.append(as_text(lookup(text, ref, context)))
        out.append(piece)
    return "".join(out)


def render_path(text: str, context: Mapping[str, object], *, allow_empty: bool = True) -> str:
    """Render a path template whose every `${{ }}` fills part of one path component only.

    A value (a request's, often) must not move the path elsewhere: one holding "/" or NUL, or
    being "." or "..", raises TemplateError naming the reference and the problem (not the
    value); with `allow_empty=False` (a file a request picks) an empty value too. The literal
    text around the references is the author's and may hold anything, `..` included.
    """
    if _OPEN not in text:
        return text
    pieces, refs = _parse(text)
    out = [pieces[0]]
    for ref, piece in zip(refs, pieces[1:], strict=True):
        value = as_text(lookup(text, ref, context))
        # Without "/" a value stays in its component; only "." or ".." of its own can make
        # that component "." or ".." (a literal "." beside it needs the value to be ".").
        problem = _component_problem(value)
        if problem is None and not value and not allow_empty:
            problem = "is empty"
        if problem is not None:
            raise _path_error(text, ref, f"renders a value that {problem}", allow_empty)
        out += [value, piece]
    return "".join(out)


def _component_problem(value: str) -> str | None:
    if "/" in value:
        return 'holds "/"'
    if "\0" in value:
        return "holds a NUL character"
    if value in (".", ".."):
        return f'is "{value}"'
    return None


def _path_error(text: str, ref: Reference, problem: str, allow_empty: bool = True) -> TemplateError:
    one = "one" if allow_empty else "one non-empty"
    return TemplateError(
        f'${{{{ {ref.expr} }}}} in "{text}" {problem}: a templated value in a path must be {one} '
        'path component, without "/", NUL, or being "." or ".."',
        text,
        ref.start,
    )


def lookup(text: str, ref: Reference, context: Mapping[str, object]) -> object:
    """The value ref names in context, or a TemplateError that says which part is missing."""
    value: object = context
    parts = ref.parts
    for i, part in enumerate(parts):
        if not isinstance(value, Mapping):
            owner = ".".join(parts[:i])
            raise TemplateError(
                f"cannot render ${{{{ {ref.expr} }}}} at offset {ref.start}: {owner} is "
                f"{kind_of(value)}, not an object, so it has no {part!r}",
                text,
                ref.start,
            )
        if part not in value:
            raise TemplateError(_missing_message(ref, parts[:i], part, value), text, ref.start)
        value = value[part]
    return value


def _missing_message(
    ref: Reference, owner: tuple[str, ...], part: str, available: Mapping[object, object]
) -> str:
    """Name the missing part and, when there is one, the closest name that does exist."""
    names = sorted(str(key) for key in available)
    where = f"{'.'.join(owner)} has no {part!r}" if owner else f"there is no {part!r}"
    message = f"unknown reference ${{{{ {ref.expr} }}}} at offset {ref.start}: {where}"
    # difflib is only needed on this error path, so it is not imported at start-up.
    import difflib

    close = difflib.get_close_matches(part, names, n=1)
    if close:
        message += f"; did you mean {'.'.join((*owner, close[0]))}?"
    elif names and len(names) <= 10:
        message += f" (known: {', '.join(names)})"
    return message


def as_text(value: object) -> str:
    """A value as text (templates, INPUT_* variables): strings verbatim, None empty, the rest
    compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, list, tuple, Mapping)):
        import json  # most rendered values are strings; don't load json for those

        return json.dumps(value, separators=(",", ":"), sort_keys=False, default=_json_default)
    # Anything else (e.g. a date that YAML parsed from an unquoted 2024-01-01) as its text.
    return str(_json_default(value))


def _json_default(value: object) -> object:
    """Make values json does not know renderable: mappings as objects, dates as ISO text."""
    if isinstance(value, Mapping):
        return dict(value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)
