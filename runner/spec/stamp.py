"""A record that step files passed `runner validate`, so runs need not check them again.

`runner validate --stamp DIR` (run when an image is built) writes `DIR/.runner-validated`:
the SHA-256 of every step file that passed, with a fingerprint of the runner version and
the schema. `runner run` then skips the schema and semantic checks for files whose content
is listed (about 70 ms per pipeline pod, mostly importing jsonschema); any edited file, or
another runner version, is checked in full as usual.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

STAMP_FILE = ".runner-validated"


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint() -> str:
    """What the stamp's verdicts depend on besides the files: the runner and its schema."""
    from runner import __version__
    from runner.spec.schema import schema_text

    return hashlib.sha256(f"{__version__}\n{schema_text()}".encode()).hexdigest()[:16]


def trusted_digests(folder: Path) -> frozenset[str]:
    """Digests of files validated by this runner version, or none (no or stale stamp)."""
    try:
        record = json.loads((folder / STAMP_FILE).read_text("utf-8"))
        if record.get("fingerprint") != fingerprint():
            return frozenset()
        return frozenset(str(d) for d in record.get("files", []))
    except (OSError, ValueError, AttributeError):
        return frozenset()


def write_stamp(folder: Path, digests: Iterable[str]) -> Path:
    from runner.kratix import write_atomic

    path = folder / STAMP_FILE
    record = {"fingerprint": fingerprint(), "files": sorted(set(digests))}
    write_atomic(path, (json.dumps(record, indent=1) + "\n").encode())
    return path
