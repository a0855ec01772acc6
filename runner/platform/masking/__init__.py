"""Secret masking for everything the runner prints: logs, command output, plans, errors.

A secret leaks in more shapes than its literal value: a command may print one line of a
multi-line key, `kubectl get secret -o yaml` prints it base64-encoded, a URL carries it
percent-encoded, Terraform prints `&` as `\u0026`, `xxd` splits it over lines. `Masker` finds
every such form of every registered secret and replaces it with `***`; `StreamMasker` does the
same for output that arrives in arbitrary chunks. Three passes, one module each:

- forms.py: the literal forms (the value, its lines, base64 at every alignment, hex, URL- and
  JSON-encoded), searched as they are;
- escapes.py: the text read with JSON, YAML, shell or percent escapes decoded, searched for
  the same forms;
- decoding.py: runs of base64 or hex lines decoded, searched for the secrets' bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from runner.platform.masking import decoding, escapes
from runner.platform.masking.forms import (
    MIN_SECRET_LENGTH,
    plain_forms,
    to_bytes,
    trie_regex,
    variants_of,
)

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Masker",
    "StreamMasker",
    "session_masker",
    "set_session_masker",
]

MASK = "***"
# How much a StreamMasker may hold back waiting for a newline before it must emit anyway.
MAX_PENDING = 64 * 1024


class Masker:
    """Masks secret values in text.

    For each secret it masks: the whole value (and the value with surrounding whitespace
    stripped), each line of a multi-line value, the base64 of the value and of the value
    plus a newline (as `echo $SECRET | base64` makes) in standard and URL-safe alphabets,
    with and without padding, the base64 of the value at each of the three byte alignments
    inside a longer encoded blob (e.g. the `auth` of a docker config), and the URL-encoded
    forms (`quote` and `quote_plus`).
    """

    # Variants longer than this enter the regex only by their first this-many characters and
    # are then compared whole: a CA bundle's base64 forms would otherwise make a regex of
    # megabytes that takes seconds to compile in every pipeline pod.
    _prefix_length = 256

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # For long variants: their prefix -> the variants with it, longest first; and a
        # regex of the short variants alone, for when no long variant matches in full.
        self._long: dict[str, tuple[str, ...]] = {}
        self._short: set[str] = set()
        self._short_pattern: re.Pattern[str] | None = None
        self._longest = 0
        # Variants containing "\n", with the offsets of their newlines: the only ones a
        # StreamMasker must wait for across a line break.
        self._multiline: tuple[tuple[str, tuple[int, ...]], ...] = ()
        # The plain forms' bytes (as Latin-1 text), sought in decoded base64 and hex.
        self._plain: set[str] = set()
        self._finder: decoding.Finder | None = None
        # How many encoded characters a secret inside base64 or hex can span.
        self._width = 0
        for value in secrets:
            self.add("secret", value)

    def add(self, name: str, value: str) -> str | None:
        """Register a secret; returns a warning (never containing the value) if it cannot be masked.

        Empty or whitespace-only values are ignored silently: there is nothing to leak.
        """
        stripped = value.strip()
        if not stripped:
            return None
        if len(stripped) < MIN_SECRET_LENGTH:
            return f"secret {name} is shorter than {MIN_SECRET_LENGTH} characters and is not masked"
        new = variants_of(value) - self._variants
        if new:
            self._variants |= new
            self._plain |= {
                raw.decode("latin-1")
                for raw in map(to_bytes, plain_forms(value))
                if len(raw) <= decoding.MAX_DECODED_FORM
            }
            self._pattern = None  # recompiled lazily by the next mask()
        return None

    def extend(self, other: Masker) -> None:
        """Mask from here on every secret `other` masks (what a run learned, for `runner test`
        to mask in what it shows of the run)."""
        new = other._variants - self._variants
        if new:
            self._variants |= new
            self._plain |= other._plain
            self._pattern = None  # recompiled lazily by the next mask()

    def __bool__(self) -> bool:
        return bool(self._variants)

    def mask(self, text: str) -> str:
        """Text with every form of every secret replaced by MASK."""
        if not self._variants:
            return text
        out: list[str] = []
        pos = 0
        for start, end, _, _ in self._hits(text):
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        if not pos:
            return text
        out.append(text[pos:])
        return "".join(out)

    def finds(self, text: str) -> bool:
        """Whether text holds a form of a secret: whether mask() would change it."""
        return bool(self._variants) and bool(self._hits(text))

    def mask_values(self, value: Any) -> Any:
        """`value` (str, numbers, dicts, lists) with secrets masked in every string and number,
        mapping keys too."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)  # a PIN or an account id read from a file is a number
            masked = self.mask(text)
            return masked if masked != text else value
        if isinstance(value, dict):
            return {self.mask_values(k): self.mask_values(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_values(v) for v in value]
        return value

    def stream(self, max_pending: int = MAX_PENDING) -> StreamMasker:
        """A masker for chunked output (see StreamMasker) that uses this masker's secrets."""
        return StreamMasker(self, max_pending)

    def _hits(self, text: str) -> list[tuple[int, int, int, int]]:
        """(start, end, anchor, last) of each stretch to mask, in order, not overlapping.

        A stretch may be one of several of a secret found in decoded base64 or hex over lines:
        `anchor` is where a stream may cut before it, `last` the end of its last stretch (for a
        stretch of one piece, start and end).
        """
        found = (
            [(start, end, start, end) for start, end in self._spans(text)]
            if self._compiled().search(text) is not None
            else []
        )
        extra = False
        if escapes.has_escapes(text):
            for view in escapes.views(text):
                for start, end in self._spans(view.text):
                    first = view.start(start)
                    found.append((first, view.end(end), first, view.end(end)))
                    extra = True
        for hit in decoding.hits(text, self._decoder()):
            last = hit.pieces[-1][1]
            found.extend((start, end, hit.anchor, last) for start, end in hit.pieces)
            extra = True
        if not extra:
            return found
        found.sort()
        merged: list[tuple[int, int, int, int]] = []
        for start, end, anchor, last in found:
            if merged and start < merged[-1][1]:
                before = merged[-1]
                merged[-1] = (
                    before[0],
                    max(before[1], end),
                    min(before[2], anchor),
                    max(before[3], last),
                )
            else:
                merged.append((start, end, anchor, last))
        return merged

    def _decoder(self) -> decoding.Finder:
        if self._finder is None:
            self._finder = decoding.Finder(self._plain)
            longest = max(map(len, self._plain), default=0)
            self._width = 2 * longest + 4  # hex: 2 characters a byte, and an odd start
        return self._finder

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of each literal form: leftmost, then the longest variant there."""
        pattern = self._compiled()
        if not self._long:
            for plain in pattern.finditer(text):
                yield plain.span()
            return
        pos = 0
        while (found := pattern.search(text, pos)) is not None:
            start, end = found.span()
            candidates = (
                self._long.get(found.group(), ()) if end - start == self._prefix_length else ()
            )
            for variant in candidates:
                if text.startswith(variant, start):
                    end = start + len(variant)
                    break
            else:
                if candidates and found.group() not in self._short:
                    # Only a long variant's prefix matched: the answer here is the longest
                    # short variant, if any, else no match at this position.
                    short = self._short_match(text, start)
                    if short is None:
                        pos = start + 1
                        continue
                    end = short.end()
            yield start, end
            pos = end

    def _short_match(self, text: str, start: int) -> re.Match[str] | None:
        """The longest short variant at start; its regex is built on first need (rarely)."""
        if not self._short:
            return None
        if self._short_pattern is None:
            self._short_pattern = re.compile(trie_regex(sorted(self._short)))
        return self._short_pattern.match(text, start)

    def _compiled(self) -> re.Pattern[str]:
        """The regex of short variants and long variants' prefixes; built once per add().

        At a position it matches the longest such string; _spans turns that into the
        longest variant.
        """
        if self._pattern is None:
            cut = self._prefix_length
            self._short = {v for v in self._variants if len(v) <= cut}
            long: dict[str, list[str]] = {}
            for variant in sorted(self._variants - self._short, key=len, reverse=True):
                long.setdefault(variant[:cut], []).append(variant)
            self._long = {prefix: tuple(variants) for prefix, variants in long.items()}
            self._pattern = re.compile(trie_regex(sorted(self._short | long.keys())))
            self._finder = None
            self._short_pattern = None
            self._longest = max(map(len, self._variants))
            self._multiline = tuple(
                (v, tuple(i for i, ch in enumerate(v) if ch == "\n"))
                for v in sorted(self._variants)
                if "\n" in v
            )
        return self._pattern


# The masker of the session running in this process: the CLI's error boundary masks an
# unexpected error's message with it, since that message may quote a secret.
_session_masker: Masker | None = None


def set_session_masker(masker: Masker | None) -> Masker | None:
    """Make `masker` the one `session_masker()` returns (a run's session does); returns the
    one before it, for a caller that runs sessions in process (`runner test`) to put back."""
    global _session_masker
    previous, _session_masker = _session_masker, masker
    return previous


def session_masker() -> Masker:
    """The running session's masker; an empty one before a session started."""
    return _session_masker if _session_masker is not None else Masker()


class StreamMasker:
    """Masks a stream that arrives in arbitrary chunks (a command's stdout).

    feed() returns what is safe to emit now: everything up to and including the last
    newline, masked. Text after the last newline is held until the next newline or
    flush(), so a secret split across two chunks is still masked. Complete lines are held
    too where a secret could still run on into the next line: a multi-line secret's first
    lines, and the last lines of a run of base64 or hex lines (as many as one secret's
    encoding can span). If more than `max_pending` characters accumulate, all but the last
    (longest form) characters are emitted so output still flows and memory stays bounded.

    Every cut is made where the masking of everything before it is already final: never
    inside a match, and never where a variant could still start and be completed by text
    yet to come (that matters for multi-line secrets, which span newlines). So the
    concatenated output of feed()s and flush() equals mask() of the whole stream.
    """

    def __init__(self, masker: Masker, max_pending: int = MAX_PENDING) -> None:
        self._masker = masker
        self._max_pending = max_pending
        # Pending text as a list of chunks: joining only when a cut is possible keeps a
        # long newline-free stream of tiny chunks linear rather than quadratic.
        self._pending: list[str] = []
        self._pending_len = 0

    def feed(self, chunk: str) -> str:
        """Take a chunk; return the masked text that is now safe to emit (maybe "")."""
        if not chunk:
            return ""
        if not self._masker:
            # Nothing to mask: pass output straight through (plus anything held earlier).
            return self.flush() + chunk if self._pending else chunk
        masker = self._masker
        if (
            not self._pending
            and chunk[-1] == "\n"
            and not masker._multiline
            and masker._pattern is not None
            and masker._finder is not None  # (so _width is up to date)
            and len(chunk) <= self._max_pending
            and _held_lines(chunk, len(chunk), masker._width) == len(chunk)
        ):
            return masker.mask(chunk)  # the common case: whole lines, nothing to hold
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if "\n" not in chunk and self._pending_len <= self._max_pending:
            return ""
        buffer = "".join(self._pending) if len(self._pending) > 1 else chunk
        masker._compiled()  # brings _longest and _multiline up to date
        masker._decoder()  # and _width
        cut = 0
        newline = buffer.rfind("\n")
        if newline >= 0:
            limit = cut = newline + 1
            if masker._multiline:
                cut = _first_open_start(masker, buffer, limit)
                if escapes.has_escapes(buffer[:limit]):
                    for view in escapes.views(buffer[:limit]):
                        start = _first_open_start(masker, view.text, len(view.text))
                        if start < len(view.text):
                            cut = min(cut, view.start(start))
            cut = min(cut, _held_lines(buffer, limit, masker._width))
        if len(buffer) - cut > self._max_pending:
            # Every match decision before this point has its full lookahead available.
            reach = max(masker._longest - 1, masker._width)
            if escapes.has_escapes(buffer):
                reach *= escapes.MAX_EXPANSION
            cut = max(cut, len(buffer) - reach)
        if cut == len(buffer):  # the common case: whole lines, none held
            emitted, rest = masker.mask(buffer), ""
        else:
            emitted, rest = _mask_prefix(masker, buffer, cut)
        self._pending = [rest] if rest else []
        self._pending_len = len(rest)
        return emitted

    def flush(self) -> str:
        """Emit everything held back, masked (call once the stream has ended)."""
        buffer = "".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return self._masker.mask(buffer)


def _first_open_start(masker: Masker, buffer: str, limit: int) -> int:
    """The first position before limit where a variant might start but needs more text.

    Positions before limit lie before a newline (buffer[limit - 1] == "\\n"), so only a
    variant containing a newline can begin there and still be incomplete; aligning
    each of its newlines with that one gives the only candidate starts.
    """
    earliest = limit
    size = len(buffer)
    for variant, newlines in masker._multiline:
        for index in newlines:
            start = limit - 1 - index
            if start < 0:
                break  # later newlines only move the start further left
            if (
                start < earliest
                and size - start < len(variant)
                and variant.startswith(buffer[start:])
            ):
                earliest = start
    return earliest


def _held_lines(buffer: str, limit: int, width: int) -> int:
    """Where the run of base64 or hex lines ending at limit must be held from: a secret's
    encoding (at most width characters) may start in these lines and end in lines to come."""
    cut = limit
    held = 0
    end = limit - 1  # the newline ending the line
    while end >= 0 and held < width:
        start = buffer.rfind("\n", 0, end) + 1
        weight = decoding.weight(buffer, start, end)
        if weight is None:
            break
        held += weight
        cut = start
        end = start - 1
    return cut


def _mask_prefix(masker: Masker, buffer: str, cut: int) -> tuple[str, str]:
    """Mask buffer[:cut] and return it with the unmasked rest, moving cut back to the anchor
    of any match that straddles it so a secret is never split between two emissions."""
    if cut <= 0:
        return "", buffer
    hits = masker._hits(buffer)
    moved = True
    while moved:
        moved = False
        for _, end, anchor, last in hits:
            if anchor < cut < max(end, last):
                cut = anchor
                moved = True
                break
    out: list[str] = []
    pos = 0
    for start, end, _, _ in hits:
        if start >= cut:
            break
        out.append(buffer[pos:start])
        out.append(MASK)
        pos = end
    cut = max(cut, 0)
    out.append(buffer[pos:cut])
    return "".join(out), buffer[cut:]
