"""A record that step files passed `runner validate`, so runs need not check them again.

`runner validate --stamp DIR` (run when an image is built) writes `DIR/.runner-validated`:
the SHA-256 of every step file that passed, with a fingerprint of the runner's code and
its schema. `runner run` then skips the schema and semantic checks for files whose content
is listed (about 70 ms per pipeline pod, mostly importing jsonschema); any edited file, or
another build of the runner, is checked in full as usual.

The digests are in an index of the folder (runner/stepfile/index.py): each file's path, size,
mtime and digest, and the kind, name, `on` and `uses` of each document in it, so that a run
parses only the files of the steps it runs. A stamp of another `FORMAT` (the first had only
the digests, as "files") is not trusted at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

STAMP_FILE = ".runner-validated"
FORMAT = 2  # 2: the index; a stamp of another format is not trusted


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@cache
def fingerprint() -> str:
    """What the stamp's verdicts depend on besides the files: the runner's code, its schema and
    its built-in templates.

    All of the package's code, not only the checks: a verdict also rests on the query, template
    and expression parsers they call, and a stale stamp that trusts a file the new code would
    refuse is worse than a re-check. Reading the sources costs about a millisecond.
    """
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    for data in (
        *sorted((package / "library").glob("*.yaml")),
        package / "stepfile" / "step.schema.json",
    ):
        digest.update(data.relative_to(package).as_posix().encode() + b"\0")
        digest.update(data.read_bytes())
    return digest.hexdigest()[:16]


def read_stamp(folder: Path) -> dict[str, Any] | None:
    """The stamp of `folder` if this runner version wrote it, else None (none, stale, broken)."""
    try:
        info = os.stat(folder / STAMP_FILE)
    except OSError:
        return None
    return _read(folder / STAMP_FILE, info.st_ino, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=4)  # read once per run however many callers; a rewritten stamp is new
def _read(path: Path, _inode: int, _size: int, _mtime: int) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    if record.get("fingerprint") != fingerprint():
        return None
    return record


def trusted_digests(folder: Path) -> frozenset[str]:
    """Digests of files validated by this runner version, or none (no or stale stamp)."""
    record = read_stamp(folder)
    index = record.get("index") if record else None
    digests = index.get("digests") if isinstance(index, dict) else None
    return frozenset(str(d) for d in digests) if isinstance(digests, list) else frozenset()


def write_stamp(folder: Path, index: dict[str, Any]) -> Path:
    """Record the valid folder's `index` (runner/stepfile/index.py): its files and their digests."""
    from runner.base.files import write_atomic

    path = folder / STAMP_FILE
    record = {"format": FORMAT, "fingerprint": fingerprint(), "index": index}
    write_atomic(path, (json.dumps(record, separators=(",", ":")) + "\n").encode())
    return path
