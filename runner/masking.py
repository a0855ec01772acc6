"""Secret masking for everything the runner prints: logs, command output, plans, errors.

A secret leaks in more shapes than its literal value: a command may print one line of a
multi-line key, `kubectl get secret -o yaml` prints it base64-encoded, a URL carries it
percent-encoded. `Masker` knows every such variant of every registered secret and replaces
them with `***`; `StreamMasker` does the same for output that arrives in arbitrary chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Masker",
    "StreamMasker",
    "session_masker",
    "set_session_masker",
]

MASK = "***"
# Shorter values would mask innocent text everywhere ("yes", "1") and hide nothing useful.
MIN_SECRET_LENGTH = 4
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
        new = _variants_of(value) - self._variants
        if new:
            self._variants |= new
            self._pattern = None  # recompiled lazily by the next mask()
        return None

    def __bool__(self) -> bool:
        return bool(self._variants)

    def mask(self, text: str) -> str:
        """Text with every variant of every secret replaced by MASK."""
        if not self._variants:
            return text
        pattern = self._compiled()
        if not self._long:
            return pattern.sub(MASK, text)
        out: list[str] = []
        pos = 0
        for start, end in self._spans(text):
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def finds(self, text: str) -> bool:
        """Whether text holds a variant of a secret: whether mask() would change it."""
        return bool(self._variants) and next(self._spans(text), None) is not None

    def mask_values(self, value: Any) -> Any:
        """`value` (str, numbers, dicts, lists) with secrets masked in every string and number."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)  # a PIN or an account id read from a file is a number
            masked = self.mask(text)
            return masked if masked != text else value
        if isinstance(value, dict):
            return {k: self.mask_values(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_values(v) for v in value]
        return value

    def stream(self, max_pending: int = MAX_PENDING) -> StreamMasker:
        """A masker for chunked output (see StreamMasker) that uses this masker's secrets."""
        return StreamMasker(self, max_pending)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) of each masked stretch: leftmost, then the longest variant there."""
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
            self._short_pattern = re.compile(_trie_regex(sorted(self._short)))
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
            self._pattern = re.compile(_trie_regex(sorted(self._short | long.keys())))
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


def set_session_masker(masker: Masker) -> None:
    """Make `masker` the one `session_masker()` returns (a run's session does)."""
    global _session_masker
    _session_masker = masker


def session_masker() -> Masker:
    """The running session's masker; an empty one before a session started."""
    return _session_masker if _session_masker is not None else Masker()


class StreamMasker:
    """Masks a stream that arrives in arbitrary chunks (a command's stdout).

    feed() returns what is safe to emit now: everything up to and including the last
    newline, masked. Text after the last newline is held until the next newline or
    flush(), so a secret split across two chunks is still masked. If more than
    `max_pending` characters accumulate without a newline, all but the last (longest
    variant - 1) characters are emitted so output still flows and memory stays bounded.

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
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if "\n" not in chunk and self._pending_len <= self._max_pending:
            return ""
        buffer = "".join(self._pending)
        self._masker._compiled()  # brings _longest and _multiline up to date
        cut = 0
        newline = buffer.rfind("\n")
        if newline >= 0:
            cut = self._first_open_start(buffer, newline + 1)
        if len(buffer) - cut > self._max_pending:
            # Every match decision before this point has its full lookahead available.
            cut = max(cut, len(buffer) - (self._masker._longest - 1))
        emitted, rest = _mask_prefix(self._masker, buffer, cut)
        self._pending = [rest] if rest else []
        self._pending_len = len(rest)
        return emitted

    def flush(self) -> str:
        """Emit everything held back, masked (call once the stream has ended)."""
        buffer = "".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return self._masker.mask(buffer)

    def _first_open_start(self, buffer: str, limit: int) -> int:
        """The first position before limit where a variant might start but needs more text.

        Positions before limit lie before a newline (buffer[limit - 1] == "\\n"), so only a
        variant containing a newline can begin there and still be incomplete; aligning
        each of its newlines with that one gives the only candidate starts.
        """
        earliest = limit
        size = len(buffer)
        for variant, newlines in self._masker._multiline:
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


def _mask_prefix(masker: Masker, buffer: str, cut: int) -> tuple[str, str]:
    """Mask buffer[:cut] and return it with the unmasked rest, moving cut back to the start
    of any match that straddles it so a secret is never split between two emissions."""
    out: list[str] = []
    pos = 0
    if cut > 0:
        for start, end in masker._spans(buffer):
            if start >= cut:
                break
            if end > cut:
                cut = start
                break
            out.append(buffer[pos:start])
            out.append(MASK)
            pos = end
    cut = max(cut, 0)
    out.append(buffer[pos:cut])
    return "".join(out), buffer[cut:]


def _variants_of(value: str) -> set[str]:
    """Every form of value that must be masked, each at least MIN_SECRET_LENGTH long."""
    # base64 and urllib are only needed when a secret is registered, not at start-up.
    import base64
    from urllib.parse import quote, quote_plus

    forms = {value, value.strip()}
    if "\n" in value:
        for line in value.split("\n"):
            line = line.rstrip("\r")
            forms.update((line, line.strip()))
    for base in {value, value.strip()}:
        raw = _to_bytes(base)
        for data in (raw, raw + b"\n"):
            encoded = base64.b64encode(data).decode("ascii")
            forms.update(_both_alphabets(encoded))
            forms.update(_both_alphabets(encoded.rstrip("=")))
            # `base64` wraps at 76 columns and openssl at 64: each wrapped line is a form.
            for width in (64, 76):
                if len(encoded) > width:
                    forms.update(encoded[i : i + width] for i in range(0, len(encoded), width))
        for shift in range(3):
            # Inside a longer blob the secret starts at any byte offset mod 3; keep only
            # the characters that depend on the secret's bytes alone.
            encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
            first = -(-8 * shift // 6)
            last = 8 * (shift + len(raw)) // 6
            forms.update(_both_alphabets(encoded[first:last]))
        forms.update((quote(raw, safe=""), quote(raw), quote_plus(raw), quote_plus(raw, safe="/")))
        # As JSON prints it (`kubectl -o json`, `terraform output -json`): quotes, backslashes
        # and control characters escaped, non-ASCII escaped or not.
        import json

        forms.update((json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1]))
    return {form for form in forms if len(form.strip()) >= MIN_SECRET_LENGTH}


def _both_alphabets(encoded: str) -> tuple[str, str]:
    """A base64 text in the standard and the URL-safe alphabet."""
    return encoded, encoded.replace("+", "-").replace("/", "_")


def _to_bytes(text: str) -> bytes:
    """The bytes a secret stands for; environment values may carry undecodable bytes."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # os.environ decodes invalid UTF-8 with surrogateescape; undo it exactly
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def _common_prefix(first: str, second: str) -> str:
    """The longest string both start with."""
    size = min(len(first), len(second))
    for i in range(size):
        if first[i] != second[i]:
            return first[:i]
    return first[:size]


def _trie_regex(words: Sequence[str]) -> str:
    """A regex that matches, at a position, the longest of words (sorted, distinct).

    Same result as an alternation of the words longest first, but factored by common
    prefixes: a plain alternation of a few thousand variants (a CA bundle's lines) would
    try every one at every position of the output.
    """
    alternatives: list[str] = []
    ends_here = False
    i = 0
    while i < len(words):
        word = words[i]
        if not word:
            ends_here = True
            i += 1
            continue
        j = i + 1
        while j < len(words) and words[j][:1] == word[0]:
            j += 1
        group = words[i:j]
        # Sorted, so the prefix shared by the first and last is shared by all.
        prefix = _common_prefix(group[0], group[-1])
        tail = _trie_regex([w[len(prefix) :] for w in group]) if len(group) > 1 else ""
        alternatives.append(re.escape(prefix) + tail)
        i = j
    if ends_here:
        # Last, so the regex engine prefers a longer variant and falls back to ending here.
        alternatives.append("")
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"
