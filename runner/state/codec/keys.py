"""Which keys may name a state's files: the rules of ConfigMap and Secret data keys.

Apart because more than the codec asks: the stores' `key_problem` (for `validate` and the
save-time error) and the codec's checks of what it writes and what it reads back.
"""

from __future__ import annotations

import re

from runner.state.codec.errors import CorruptState

# Keys as Kubernetes allows them in ConfigMap/Secret data (IsConfigMapKey).
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_MAX_KEY_LENGTH = 253


def valid_key(key: str) -> bool:
    """Whether `key` may name a file in a ConfigMap or Secret."""
    return key_problem(key) is None


def key_problem(key: str) -> str | None:
    """Why `key` can't name a file in a ConfigMap or Secret (the API server's IsConfigMapKey),
    in words that name the rule; None when it can."""
    if not key:
        return "a ConfigMap/Secret key can't be empty"
    if len(key) > _MAX_KEY_LENGTH:
        return f"a ConfigMap/Secret key has at most 253 characters (this one has {len(key)})"
    if key in (".", ".."):
        return 'a ConfigMap/Secret key can\'t be "." or ".."'
    if _KEY.fullmatch(key) is None:
        bad = ", ".join(dict.fromkeys(_show_char(c) for c in key if not _KEY.fullmatch(c)))
        return (
            "a ConfigMap/Secret key has only letters, digits, '-', '_' and '.' "
            f"(this one has {bad})"
        )
    return None


def _show_char(char: str) -> str:
    return "a space" if char == " " else repr(char)


def stored_key(key: str) -> str:
    """`key` as read from a stored object; CorruptState when no save of ours could have made it."""
    if not valid_key(key):
        raise CorruptState(f"stored key {key!r} is not a valid state key")
    return key
