"""Escaped forms of a secret: JSON (Python's, Go's, jq's), YAML quoted scalars, shell quoting
and percent-encoding of either case.

Each escaping lets a character be written several ways (`&`, `\\u0026`, `\\x26`, `\\&`) and
tools mix them, so rather than enumerate variants the Masker reads the text decoded: a View is
the text with every escape sequence of one family replaced by the character it stands for,
with a map back to the text. Three families, each read only when the text holds its mark:

- backslash (`\\`): JSON (`\\"`, `\\\\`, `\\/`, `\\n`, `\\u0026`, surrogate pairs), YAML
  double-quoted (`\\x26`, `\\U0001F600`, `\\N`, `\\_`, `\\L`, `\\P`, `\\e`), bash `printf %q`
  (`\\&`, `\\ `, `$'\\001'`, `$'\\E'`, octal bytes of a UTF-8 character);
- quote (`'`): YAML single-quoted `''` and shell `'"'"'` / `'\\''` (shlex.quote), read
  twice: pairing a run of quotes from its first and from its second;
- percent (`%`): `%2f` and `%2F` alike, `%C3%A9` as one character, `+` as a space.

No escape sequence spans a line break, so a view of text up to a newline is final.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator

# The longest escape sequence (a surrogate pair, or four percent-encoded UTF-8 bytes), in text
# characters per decoded character: how far back a stream must look for a match to be final.
MAX_EXPANSION = 12

_SIMPLE = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "a": "\a",
    "v": "\v",
    "e": "\x1b",
    "E": "\x1b",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}

_BACKSLASH = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    # One UTF-8 character as escaped bytes (bash in the C locale: $'\303\251').
    r"|(?:\\x[c-fC-F][0-9a-fA-F]|\\3[0-7]{2})(?:\\x[89abAB][0-9a-fA-F]|\\2[0-7]{2}){1,3}"
    r"|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\\x[0-9a-fA-F]{2}|\\[0-7]{1,3}|\\[^\n]"
)
_QUOTE = re.compile(r"""'"'"'|'\\''|''(?!"'")""")
# Which quote of a run of them opens or closes the string is not known without the whole
# document: the second view pairs them from the second quote of a run.
_QUOTE_ODD = re.compile(r"""(?<!')'(?=')|'"'"'|'\\''|''(?!"'")""")
_PERCENT = re.compile(
    r"%[cdCD][0-9a-fA-F]%[89abAB][0-9a-fA-F]"
    r"|%[eE][0-9a-fA-F](?:%[89abAB][0-9a-fA-F]){2}"
    r"|%[fF][0-7](?:%[89abAB][0-9a-fA-F]){3}"
    r"|%[0-9a-fA-F]{2}|\+"
)
_ESCAPED_BYTE = re.compile(r"\\x([0-9a-fA-F]{2})|\\([0-7]{3})")


def _backslash(token: str) -> str:
    kind = token[1]
    if len(token) == 2:
        return _SIMPLE.get(kind, kind)
    if kind in "uU" and "\\" not in token[2:]:
        try:
            return chr(int(token[2:], 16))
        except ValueError:  # beyond U+10FFFF: not an escape, keep it as it is
            return token
    if kind == "u":  # a surrogate pair
        high, low = int(token[2:6], 16), int(token[8:12], 16)
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    if kind == "x" and len(token) == 4:
        return chr(int(token[2:], 16))
    if token.count("\\") == 1:  # octal, 1 to 3 digits
        return chr(int(token[1:], 8))
    raw = bytes(
        int(hexa, 16) if hexa else int(octal, 8) for hexa, octal in _ESCAPED_BYTE.findall(token)
    )
    return raw.decode("utf-8", "surrogateescape")


def _percent(token: str) -> str:
    if token == "+":
        return " "
    return bytes.fromhex(token.replace("%", "")).decode("utf-8", "surrogateescape")


_FAMILIES: tuple[tuple[str, re.Pattern[str], Callable[[str], str]], ...] = (
    ("\\", _BACKSLASH, _backslash),
    ("'", _QUOTE, lambda _: "'"),
    ("''", _QUOTE_ODD, lambda _: "'"),
    ("%", _PERCENT, _percent),
)


class View:
    """Text with one family's escape sequences decoded, and the map back to the text."""

    __slots__ = ("_dec_ends", "_dec_starts", "_raw_ends", "_raw_starts", "text")

    def __init__(self, text: str, pattern: re.Pattern[str], decode: Callable[[str], str]) -> None:
        parts: list[str] = []
        self._dec_starts: list[int] = []
        self._dec_ends: list[int] = []
        self._raw_starts: list[int] = []
        self._raw_ends: list[int] = []
        pos = size = 0
        for token in pattern.finditer(text):
            start, end = token.span()
            parts.append(text[pos:start])
            size += start - pos
            char = decode(token.group())
            parts.append(char)
            self._dec_starts.append(size)
            size += len(char)
            self._dec_ends.append(size)
            self._raw_starts.append(start)
            self._raw_ends.append(end)
            pos = end
        parts.append(text[pos:])
        self.text = "".join(parts)

    def __bool__(self) -> bool:
        return bool(self._raw_starts)

    def start(self, position: int) -> int:
        """Where in the text the decoded character at position begins."""
        i = bisect_right(self._dec_starts, position) - 1
        if i < 0:
            return position
        if position < self._dec_ends[i]:
            return self._raw_starts[i]
        return self._raw_ends[i] + position - self._dec_ends[i]

    def end(self, position: int) -> int:
        """Where in the text the decoded characters before position end (position > 0)."""
        last = position - 1
        i = bisect_right(self._dec_starts, last) - 1
        if i < 0:
            return position
        if last < self._dec_ends[i]:
            return self._raw_ends[i]
        return self._raw_ends[i] + position - self._dec_ends[i]


def views(text: str) -> Iterator[View]:
    """The decoded views of text that differ from it."""
    for mark, pattern, decode in _FAMILIES:
        if mark in text:
            view = View(text, pattern, decode)
            if view:
                yield view


def has_escapes(text: str) -> bool:
    """Whether any view of text could differ from it."""
    return "\\" in text or "'" in text or "%" in text
