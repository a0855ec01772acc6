"""The stamp's index of a steps folder: which files a run needs to parse.

`runner validate --stamp` records, for each step file (its path in the folder, size, mtime
and digest), the kind, name, `on` and `uses` of each document in it. A run that wants some
steps (by name, or those whose `on` matches the workflow) then parses only the files that
define them and the StepTemplates they use, instead of every file of the folder: start-up no
longer grows with the size of the folder.

The index is used only while it is fresh: the stamp is this runner's (its fingerprint), and
the folder holds the same step files, with the same sizes and mtimes, as when it was stamped
(one scandir walk, a few ms for 1,000 files). Anything else, or any doubt (an unknown step
name, nothing matching), answers None: the caller scans the whole folder as without a stamp,
so its messages are the usual ones. The files parsed are still digest-checked (`Needed`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.spec.source import MAX_FILE_BYTES, parse_yaml_bytes, read_bytes
from runner.spec.stamp import content_digest, read_stamp

STEP_SUFFIXES = (".yaml", ".yml")  # as runner/spec/loader.py discovers step files
STEP_KIND = "Step"
TEMPLATE_KIND = "StepTemplate"


@dataclass(frozen=True)
class Needed:
    """The files to parse, in file-name order, with the digest each had when stamped."""

    files: list[Path]
    digests: list[str]


# -- writing (runner validate --stamp) --------------------------------------------------------


def build_index(
    folder: Path, files: Sequence[Path], effective_on: dict[str, Any]
) -> list[dict[str, Any]]:
    """The index entries of `files` (the valid folder's, in file-name order).

    `effective_on`: each Step's `on` as loaded, its templates' merged in (a template may give
    a step its `on`), by step name; a Step not in it keeps the `on` it was written with.
    """
    entries = []
    for file in files:
        info = os.stat(file)
        data, _ = read_bytes(file, str(file), max_bytes=MAX_FILE_BYTES)
        docs, _ = parse_yaml_bytes(data or b"", str(file))
        described = []
        for doc in docs:
            value = doc.value if isinstance(doc.value, dict) else {}
            metadata = value.get("metadata")
            spec = value.get("spec")
            spec = spec if isinstance(spec, dict) else {}
            entry: dict[str, Any] = {
                "kind": value.get("kind"),
                "name": metadata.get("name") if isinstance(metadata, dict) else None,
            }
            if entry["kind"] == STEP_KIND:
                entry["on"] = effective_on.get(entry["name"], spec.get("on"))
            if isinstance(spec.get("uses"), str):
                entry["uses"] = spec["uses"]
            described.append(entry)
        entries.append(
            {
                "path": file.relative_to(folder).as_posix(),
                "digest": content_digest(data or b""),
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "docs": described,
            }
        )
    return entries


# -- reading (run, plan, rbac, pipeline) ------------------------------------------------------


def needed_files(
    folder: Path,
    names: Sequence[str] = (),
    context: tuple[str, str, str | None] | None = None,
) -> Needed | None:
    """The files that define the steps named, or (no names) those whose `on` matches
    `context` (workflow, action, promise), and the templates they use; None: scan them all."""
    record = read_stamp(folder)
    index = record.get("index") if record else None
    if not isinstance(index, list) or not (names or context):
        return None
    try:
        return _needed(folder, index, names, context)
    except (KeyError, TypeError, ValueError, AttributeError):  # a damaged index: not used
        return None


def _needed(
    folder: Path,
    index: list[dict[str, Any]],
    names: Sequence[str],
    context: tuple[str, str, str | None] | None,
) -> Needed | None:
    if not _fresh(folder, index):
        return None
    by_path = {entry["path"]: entry for entry in index}
    steps: dict[str, str] = {}  # step name -> its file
    templates: dict[str, str] = {}  # template name -> its file
    for entry in index:
        for doc in entry["docs"]:
            table = {STEP_KIND: steps, TEMPLATE_KIND: templates}.get(doc["kind"])
            if table is not None and isinstance(doc["name"], str):
                table.setdefault(doc["name"], entry["path"])
    if names:
        if any(name not in steps for name in names):
            return None  # the full scan says which, with a did-you-mean
        wanted = [steps[name] for name in names]
    else:
        from runner.spec.build import build_trigger

        assert context is not None
        wanted = [
            entry["path"]
            for entry in index
            for doc in entry["docs"]
            if doc["kind"] == STEP_KIND and build_trigger(doc.get("on")).matches(*context)
        ]
        if not wanted:
            return None  # the warning explains each step's `on`: it needs them all
    chosen: set[str] = set()
    while wanted:
        path = wanted.pop()
        if path in chosen:
            continue
        chosen.add(path)
        for doc in by_path[path]["docs"]:
            used = _template_file(doc.get("uses"), path, templates)
            if used is not None and used in by_path:
                wanted.append(used)
    # Not in the index (a built-in template, a file outside the folder): the loader reads it.
    order = [entry for entry in index if entry["path"] in chosen]
    return Needed(
        [folder / entry["path"] for entry in order], [str(entry["digest"]) for entry in order]
    )


def _template_file(uses: object, user: str, templates: dict[str, str]) -> str | None:
    """The folder's file (its index path) holding the template `uses` names, if it has one:
    a name (no "/"), or a path relative to the using file `user`."""
    if not isinstance(uses, str):
        return None
    if "/" not in uses:
        return templates.get(uses)
    return posixpath.normpath(posixpath.join(posixpath.dirname(user), uses))


def _fresh(folder: Path, index: list[dict[str, Any]]) -> bool:
    """Whether the folder's step files are those indexed, with the same sizes and mtimes."""
    try:
        found = _walk(folder)
    except OSError:
        return False
    if len(found) != len(index):
        return False
    for entry in index:
        size, mtime = found.get(entry["path"], (None, 0))
        if size != entry["size"] or not _same_mtime(mtime, entry["mtime_ns"]):
            return False
    return True


_SECOND = 1_000_000_000


def _same_mtime(now: int, then: int) -> bool:
    """The same mtime, or `then` cut to whole seconds: an image's layer tarballs may keep only
    seconds (`docker push` and `docker save`, moby/moby#48447; kaniko's USTAR headers), so the
    files a pod sees have no nanoseconds where the build's `validate --stamp` saw some (cut
    down, or rounded to the nearest second as Go's archive/tar does by default)."""
    return now == then or (now % _SECOND == 0 and abs(now - then) < _SECOND)


def _walk(folder: Path) -> dict[str, tuple[int, int]]:
    """Each step file's path in `folder` (POSIX), with its size and mtime_ns: the files
    `discover` finds (*.yaml, *.yml, recursively, hidden files and folders skipped, symlinked
    folders not followed), by os.scandir, which gives the kinds without a stat per entry."""
    found: dict[str, tuple[int, int]] = {}
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, where = pending.pop()
        with os.scandir(where) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((f"{prefix}{name}/", entry.path))
                elif name.endswith(STEP_SUFFIXES) and entry.is_file():
                    info = entry.stat()
                    found[prefix + name] = (info.st_size, info.st_mtime_ns)
    return found
