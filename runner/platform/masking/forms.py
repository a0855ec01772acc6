"""The literal forms of a secret: the strings a Masker searches for as they are.

Forms that vary character by character (JSON, YAML and shell escapes, percent-encoding of
either case) are found by decoding the text instead (escapes.py); base64 and hex wrapped over
lines by decoding runs of lines (decoding.py). Both search the decoded text for these forms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Shorter values would mask innocent text everywhere ("yes", "1") and hide nothing useful.
MIN_SECRET_LENGTH = 4


def plain_forms(value: str) -> set[str]:
    """The value, stripped, and each line of a multi-line value: what decoded text may hold."""
    forms = {value, value.strip()}
    if "\n" in value:
        for line in value.split("\n"):
            line = line.rstrip("\r")
            forms.update((line, line.strip()))
    return {form for form in forms if len(form.strip()) >= MIN_SECRET_LENGTH}


def variants_of(value: str) -> set[str]:
    """Every literal form of value to mask, each at least MIN_SECRET_LENGTH long."""
    # base64 and urllib are only needed when a secret is registered, not at start-up.
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms = plain_forms(value)
    for base in {value, value.strip()}:
        raw = to_bytes(base)
        for data in (raw, raw + b"\n"):
            encoded = base64.b64encode(data).decode("ascii")
            forms.update(_both_alphabets(encoded))
            forms.update(_both_alphabets(encoded.rstrip("=")))
            # `base64` wraps at 76 columns and openssl at 64: each wrapped line is a form.
            # (Other widths, and the secret at any offset of a wrapped blob: decoding.py.)
            # Not for a huge secret: its thousands of lines would make a regex that takes
            # seconds to compile; its own lines and whole forms are still masked.
            for width in (64, 76) if len(encoded) <= _MAX_WRAPPED else ():
                if len(encoded) > width:
                    forms.update(encoded[i : i + width] for i in range(0, len(encoded), width))
        for shift in range(3):
            # Inside a longer blob the secret starts at any byte offset mod 3; keep only
            # the characters that depend on the secret's bytes alone.
            encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
            first = -(-8 * shift // 6)
            last = 8 * (shift + len(raw)) // 6
            forms.update(_both_alphabets(encoded[first:last]))
        # Hex inside a line (`sha256sum`-like tools, `xxd -p` of a short value): any byte
        # offset of a longer hex string is an even offset, so the secret's hex is a substring.
        forms.update((raw.hex(), raw.hex().upper()))
        forms.update((quote(raw, safe=""), quote(raw), quote_plus(raw), quote_plus(raw, safe="/")))
        # As Python's json prints it; every other escaping of a JSON string: escapes.py.
        forms.update((json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1]))
        forms.update(_decoded_forms(base))
    return {form for form in forms if len(form.strip()) >= MIN_SECRET_LENGTH}


_MAX_WRAPPED = 64 * 1024  # base64 characters: past this, no wrapped-line forms
_MIN_KEY_BYTES = 12  # a secret that is base64 of at least this many bytes is key material


def _decoded_forms(value: str) -> set[str]:
    """A secret that is itself base64 (a key, `head -c 32 /dev/urandom | base64`): the same
    bytes as tools also print them: unpadded, URL-safe, and as hex."""
    import base64
    import binascii

    text = value.strip()
    if len(text) < 16 or len(text) % 4 or not text.isascii():
        return set()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return set()
    if len(raw) < _MIN_KEY_BYTES:
        return set()
    urlsafe = base64.urlsafe_b64encode(raw).decode("ascii")
    return {
        text.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
        raw.hex(),
        raw.hex().upper(),
    }


def _both_alphabets(encoded: str) -> tuple[str, str]:
    """A base64 text in the standard and the URL-safe alphabet."""
    return encoded, encoded.replace("+", "-").replace("/", "_")


def to_bytes(text: str) -> bytes:
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


def trie_regex(words: Sequence[str]) -> str:
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
        tail = trie_regex([w[len(prefix) :] for w in group]) if len(group) > 1 else ""
        alternatives.append(re.escape(prefix) + tail)
        i = j
    if ends_here:
        # Last, so the regex engine prefers a longer variant and falls back to ending here.
        alternatives.append("")
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"
