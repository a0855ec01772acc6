"""The manifest of a chunked state: the only thing in its main object, written last.

It says how many chunks there are, their compressed size and sha256, the keys, and the
generation that names this save's chunk objects. Apart from the chunk stream because the store
reads it on its own (to name the chunk objects to fetch, or to delete after a save), and
because what a manifest may contain is checked strictly here before anything trusts it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Final

from runner.state.codec.errors import CorruptState
from runner.state.codec.formats import CHUNKED, b64
from runner.state.codec.keys import valid_key
from runner.state.objectkind import ObjectKind

MANIFEST_KEY: Final = "manifest"
"""The only key in a chunked main object's ``.data``: the manifest's JSON text (ConfigMap) or
that text base64-encoded (Secret, whose ``.data`` values are all base64)."""
MANIFEST_VERSION: Final = 1

_GENERATION = re.compile(r"[0-9a-f]{16}")
_MANIFEST_LIMIT = 1_000_000  # thousands of keys, long ones: the main object must still fit


def new_generation() -> str:
    """A fresh generation: 16 random hex digits (64 bits), so no two saves share chunk names."""
    return os.urandom(8).hex()


def check_generation(generation: str) -> None:
    """ValueError unless `generation` can name chunk objects."""
    if _GENERATION.fullmatch(generation) is None:
        raise ValueError(f"generation {generation!r} is not 16 lowercase hex digits")


def manifest_text(
    kind: ObjectKind,
    keys: list[str],
    generation: str,
    chunks: int,
    size: int,
    total: int,
    sha: str,
    worst: bool = False,
) -> str:
    """The manifest as it goes into the main object's ``.data``; with worst=True, one with the
    biggest numbers it could hold, to learn up front whether it fits. Raises ValueError."""
    if worst:
        chunks = size = total = 1 << 63
    doc = {
        "version": MANIFEST_VERSION,
        "chunks": chunks,
        "size": size,
        "sha256": sha,
        "keys": keys,
        "generation": generation,
        "files": len(keys),
        "bytes": total,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if len(text) * 4 // 3 + len(MANIFEST_KEY) > _MANIFEST_LIMIT:
        raise ValueError(f"a state of {len(keys)} files has too many keys for one manifest")
    # A Secret's .data is base64 like everything in it; a ConfigMap shows the manifest as is.
    return b64(text.encode("ascii")) if kind.base64_values else text


def manifest(data: Mapping[str, str] | None, *, format: str | None = None) -> dict[str, Any] | None:
    """The manifest of a chunked main object's ``.data``: a dict with ``version``, ``chunks``,
    ``size``, ``sha256``, ``keys``, ``generation`` (and ``files``, ``bytes``); None when `data`
    is not a chunked main object. Takes a ConfigMap's ``.data`` (JSON text) or a Secret's
    (base64 of it) alike: JSON text starts with ``{``, which base64 never contains.

    Pass the object's format annotation as `format` when known: for another format this returns
    None (a plain state may well have a file called ``manifest``), and for ``chunked`` a
    missing or malformed manifest raises CorruptState instead of returning None.
    """
    strict = format == CHUNKED
    if format not in (None, "", CHUNKED):
        return None
    data = data or {}
    text = data.get(MANIFEST_KEY)
    if text is None or len(data) != 1:
        if strict:
            raise CorruptState(f"chunked state object has no lone {MANIFEST_KEY!r} key")
        return None
    try:
        if not text.lstrip().startswith("{"):
            text = base64.b64decode(text, validate=True).decode("utf-8")
        doc = json.loads(text)
        _check_manifest(doc)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        if strict:
            raise CorruptState(f"chunked state: malformed manifest: {exc}") from None
        return None
    return doc  # type: ignore[no-any-return]


def _check_manifest(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    if doc.get("version") != MANIFEST_VERSION:
        raise ValueError(f"version {doc.get('version')!r}, expected {MANIFEST_VERSION}")
    for name in ("chunks", "size"):
        value = doc[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    sha, generation = doc["sha256"], doc["generation"]
    if not isinstance(sha, str) or re.fullmatch(r"[0-9a-f]{64}", sha) is None:
        raise ValueError("sha256 must be 64 hex digits")
    if not isinstance(generation, str) or _GENERATION.fullmatch(generation) is None:
        raise ValueError("generation must be 16 lowercase hex digits")
    keys = doc["keys"]
    if not isinstance(keys, list) or not all(isinstance(k, str) and valid_key(k) for k in keys):
        raise ValueError("keys must be a list of valid keys")
    if keys != sorted(set(keys)):
        raise ValueError("keys must be sorted and unique")
