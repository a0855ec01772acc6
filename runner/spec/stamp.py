"""A record that step files passed `runner validate`, so runs need not check them again.

`runner validate --stamp DIR` (run when an image is built) writes `DIR/.runner-validated`:
the SHA-256 of every step file that passed, with a fingerprint of the runner's code and
its schema. `runner run` then skips the schema and semantic checks for files whose content
is listed (about 70 ms per pipeline pod, mostly importing jsonschema); any edited file, or
another build of the runner, is checked in full as usual.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

STAMP_FILE = ".runner-validated"


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
        package / "spec" / "step.schema.json",
    ):
        digest.update(data.relative_to(package).as_posix().encode() + b"\0")
        digest.update(data.read_bytes())
    return digest.hexdigest()[:16]


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
