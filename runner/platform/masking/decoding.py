"""Secrets inside base64 or hex that is wrapped over lines: found by decoding the lines.

`base64` wraps at 76 columns, openssl at 64, `xxd -p` at 60, and a dump (`xxd`, `od -tx1`,
`hexdump -C`) puts 16 bytes a line between an offset and a text column. A secret inside such
a blob sits at any byte offset and may be cut by any line break, which no list of literal
variants covers. So: consecutive lines that are wholly base64 (or wholly hex, or dump lines)
form a run; the run's characters are joined, decoded at every alignment (4 for base64, 2 for
hex), and the decoded bytes searched for the secrets' bytes. Every character that carries a
bit of a secret is masked, on every line it spans (and a dump line's text column).

Linear in the text: one regex pass finds the candidate lines, each run is decoded a fixed
number of times. Decoding at every alignment, and counting overlapping matches, makes what
is found in a run independent of where the run starts: a StreamMasker that has emitted the
first lines of a run finds the same secrets in the rest.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from itertools import chain

# A candidate line: all base64 (the alphabet of either flavour, `=` padding at the end), or a
# hex dump line: `xxd` (offset, colon, groups of bytes, text column), `hexdump -C` (offset,
# bytes, |text|), `od -tx1` (optional offset, bytes). Contiguous hex (`xxd -p`) is a base64
# line too: read as both.
_LINE = re.compile(
    r"(?m)^[ \t]*+(?:"
    r"(?P<b64>[A-Za-z0-9+/_-]++={0,2})"
    r"|[0-9a-fA-F]{6,8}: (?P<xxd>[0-9a-fA-F]{2,}(?: [0-9a-fA-F]{2,})*)(?P<xxdtext>  .*)?"
    r"|(?:[0-9a-fA-F]{6,8}[ \t]{1,3})?(?P<dump>[0-9a-fA-F]{2}(?:[ \t]{1,3}[0-9a-fA-F]{2})*)"
    r"(?:[ \t]+(?P<dumptext>\|.*\|))?"
    r")[ \t]*\r?$"
)
# The longest form (in bytes) sought in decoded runs. A stream holds the end of a run for as
# many characters as this form's encoding spans, and masks what it holds again with each new
# line: a CA bundle (200 KB) would make that quadratic. A longer multi-line secret is sought by
# its lines (a PEM's are 64 characters); a longer single-line one only as its own base64 wrapped
# at 64 or 76 (forms.py).
MAX_DECODED_FORM = 1024
# A line of fewer encoded characters ends a run (a blob's last line is short): so a stream
# need not hold back a line like "Done" or "deadbeef" in case a blob goes on after it. Blobs
# wrapped narrower than this are not decoded (their unwrapped forms still are masked).
MIN_WIDTH = 16
# The same after a newline: a pattern that starts with a literal is searched for by that
# character, three times faster over ordinary output than trying `^` at every position.
_NEXT_LINE = re.compile(r"(?m)\n" + _LINE.pattern[len("(?m)^") :])
_HEX = re.compile(r"[0-9a-fA-F]+")
_URLSAFE = str.maketrans("-_", "+/")


class _Run:
    """Consecutive lines of one kind: pieces of encoded text with where each sits."""

    __slots__ = ("end", "joined", "lines", "offsets", "rows", "size", "starts")

    def __init__(self) -> None:
        self.joined: list[str] = []
        self.offsets: list[int] = []  # of each piece in the joined text
        self.starts: list[int] = []  # of each piece in the text
        self.lines: list[int] = []  # index of each piece's line in `rows`
        # Each line's start and its text column (of a dump line), if any.
        self.rows: list[tuple[int, tuple[int, int] | None]] = []
        self.size = 0
        self.end = -2  # where the last line ended (its newline)

    def add(self, piece: str, start: int) -> None:
        self.joined.append(piece)
        self.offsets.append(self.size)
        self.starts.append(start)
        self.lines.append(len(self.rows) - 1)
        self.size += len(piece)


class Hit:
    """The stretches of text that carry one found secret, and where a stream may cut."""

    __slots__ = ("anchor", "pieces")

    def __init__(self, pieces: list[tuple[int, int]], anchor: int) -> None:
        self.pieces = pieces
        self.anchor = anchor  # a stream may cut the text here without losing the hit


def hits(text: str, finder: Finder) -> Iterator[Hit]:
    """Every secret inside a base64 or hex run of text."""
    lines = _lines(text)
    first = next(lines, None)
    if first is None:  # most output: no line to read
        return
    b64 = _Run()
    hexa = _Run()
    for line, start in chain((first,), lines):
        if start != b64.end + 1:
            yield from _close(b64, finder, 4)
            b64 = _Run()
        if start != hexa.end + 1:
            yield from _close(hexa, finder, 2)
            hexa = _Run()
        encoded = line.group("b64")
        if encoded is not None:
            b64.rows.append((start, None))
            b64.add(encoded.rstrip("="), line.start("b64"))
            b64.end = line.end()
            if encoded.endswith("=") or len(encoded) < MIN_WIDTH:  # the blob's last line
                yield from _close(b64, finder, 4)
                b64 = _Run()
            # Hex: an even number of hex digits. (Not a regex of repeated pairs: the regex
            # engine keeps a backtracking mark per repeat, 60 bytes a character of the line.)
            if len(encoded) % 2 or _HEX.fullmatch(encoded) is None:
                continue
            hexa.rows.append((start, None))
            hexa.add(encoded, line.start("b64"))
            size = len(encoded)
        else:
            name = "xxd" if line.group("xxd") is not None else "dump"
            column = line.span(f"{name}text") if line.group(f"{name}text") else None
            hexa.rows.append((start, column))
            offset = line.start(name)
            size = 0
            for digits in _HEX.finditer(line.group(name)):
                hexa.add(digits.group(), offset + digits.start())
                size += len(digits.group())
        hexa.end = line.end()
        if size < MIN_WIDTH:  # the dump's last line
            yield from _close(hexa, finder, 2)
            hexa = _Run()
    yield from _close(b64, finder, 4)
    yield from _close(hexa, finder, 2)


def _lines(text: str) -> Iterator[tuple[re.Match[str], int]]:
    """The lines this pass reads, each with where it starts."""
    first = _LINE.match(text)
    if first is not None:
        yield first, 0
    for line in _NEXT_LINE.finditer(text):
        yield line, line.start() + 1


def weight(text: str, start: int, end: int) -> int | None:
    """How many encoded characters the line text[start:end] adds to a run that may go on
    past it; None: a line that is not read, or that ends its run."""
    line = _LINE.match(text, start, end)
    if line is None:
        return None
    encoded = line.group("b64")
    if encoded is not None:
        size = len(encoded) if not encoded.endswith("=") else 0
    else:
        name = "xxd" if line.group("xxd") is not None else "dump"
        size = sum(len(digits) for digits in _HEX.findall(line.group(name)))
    return size if size >= MIN_WIDTH else None


def _close(run: _Run, finder: Finder, group: int) -> Iterator[Hit]:
    if run.size < group:
        return
    import base64

    joined = "".join(run.joined)
    for align in range(group):
        chunk = joined[align:]
        if group == 4:
            # A last group of 2 or 3 characters still holds whole bytes (padding stripped).
            rest = len(chunk) % 4
            chunk = chunk[: len(chunk) - 1] if rest == 1 else chunk
            chunk += "=" * (-len(chunk) % 4)
            try:
                data = base64.b64decode(chunk.translate(_URLSAFE))
            except ValueError:
                continue
            bits = 6
        else:
            data = bytes.fromhex(chunk[: len(chunk) // 2 * 2])
            bits = 4
        for first, last in finder.find(data.decode("latin-1")):
            yield _hit(run, align + 8 * first // bits, align + -(-8 * last // bits), align, group)


def _hit(run: _Run, first: int, last: int, align: int, group: int) -> Hit:
    """The stretches of text of the joined characters first..last of run (decoded in groups
    of `group` characters from `align`)."""
    pieces: list[tuple[int, int]] = []
    touched: list[int] = []
    i = bisect_right(run.offsets, first) - 1
    while i < len(run.joined) and run.offsets[i] < last:
        offset = run.offsets[i]
        begin = run.starts[i] + max(first, offset) - offset
        end = run.starts[i] + min(last, offset + len(run.joined[i])) - offset
        if pieces and touched[-1] == run.lines[i]:
            pieces[-1] = (pieces[-1][0], end)  # bytes of one dump line: one stretch
        else:
            pieces.append((begin, end))
            touched.append(run.lines[i])
        i += 1
    for line in touched:
        column = run.rows[line][1]
        if column is not None:
            pieces.append(column)
    pieces.sort()
    # A stream may cut before the line where the first decoded group of the hit begins: the
    # rest still decodes to the same bytes there (a dump line is one only from its start).
    begin = align + (first - align) // group * group
    anchor = run.rows[run.lines[bisect_right(run.offsets, begin) - 1]][0]
    return Hit(pieces, anchor)


class Finder:
    """Finds, at every position of a text (overlapping), the longest of some words.

    Words longer than a prefix length enter the regex by their prefix only and are compared
    whole after, as in Masker: a CA bundle would otherwise make a regex of its full size.
    """

    _prefix_length = 256

    def __init__(self, words: set[str]) -> None:
        from runner.platform.masking.forms import trie_regex

        # Many words (a CA bundle's lines): their first 4 characters, to skip a text holding
        # none of them without running a regex of thousands of alternatives over it.
        self._keys = (
            re.compile(trie_regex(sorted({w[:4] for w in words})), re.DOTALL)
            if len(words) > 64
            else None
        )
        cut = self._prefix_length
        self._short = {w for w in words if len(w) <= cut}
        long: dict[str, list[str]] = {}
        for word in sorted(words - self._short, key=len, reverse=True):
            long.setdefault(word[:cut], []).append(word)
        self._long = {prefix: tuple(found) for prefix, found in long.items()}
        self._pattern = re.compile(trie_regex(sorted(self._short | self._long.keys())), re.DOTALL)
        self._fallback: re.Pattern[str] | None = None
        self.longest = max(map(len, words), default=0)

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        from runner.platform.masking.forms import trie_regex

        keys = self._keys
        if not self.longest or (keys is not None and keys.search(text) is None):
            return  # no word (every secret longer than the decoded forms kept): nothing to find
        # Overlapping: after a match, search again from the next position (not a lookahead
        # regex, which would enter the trie at every position instead of scanning for a start).
        position = 0
        size = len(text)
        # (re matches an empty pattern at the end however far past it `position` is)
        while position <= size and (found := self._pattern.search(text, position)) is not None:
            start = found.start()
            position = start + 1
            word = found.group()
            end = start + len(word) if word in self._short else -1
            for candidate in self._long.get(word, ()):
                if text.startswith(candidate, start):
                    end = start + len(candidate)
                    break
            if end < 0 and self._short:
                # Only a long word's prefix matched: the longest short word there, if any.
                if self._fallback is None:
                    self._fallback = re.compile(trie_regex(sorted(self._short)), re.DOTALL)
                short = self._fallback.match(text, start)
                end = short.end() if short is not None else -1
            if end > start:
                yield start, end
