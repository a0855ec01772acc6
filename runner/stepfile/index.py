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

import json
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.base.source import MAX_FILE_BYTES, parse_yaml_bytes, read_bytes
from runner.stepfile.loader import walk_step_files
from runner.stepfile.stamp import content_digest, read_stamp
from runner.stepfile.step_template_library import TEMPLATE_KIND

STEP_KIND = "Step"


@dataclass(frozen=True)
class Needed:
    """The files to parse, in file-name order, with the digest each had when stamped."""

    files: list[Path]
    digests: list[str]


# -- writing (runner validate --stamp) --------------------------------------------------------
#
# The index is columns rather than an object per file: a run parses all of it, and 1,000 files
# as lists of plain values take half the memory and time of 1,000 small objects.
#   paths, sizes, mtimes, digests: per file (path relative to the folder, POSIX), in file-name
#       order, as `discover` finds them;
#   docs: per document [file (its number), kind, name, on (its number in `on`; null for a
#       StepTemplate), uses (null when none)];
#   on: each distinct `on` of the steps (most steps share a few), null when a step has none.


def build_index(
    folder: Path, files: Sequence[Path], effective_on: dict[str, Any]
) -> dict[str, Any]:
    """The index of `files` (the valid folder's, in file-name order).

    `effective_on`: each Step's `on` as loaded, its templates' merged in (a template may give
    a step its `on`), by step name; a Step not in it keeps the `on` it was written with.
    """
    index: dict[str, list[Any]] = {
        key: [] for key in ("paths", "sizes", "mtimes", "digests", "docs", "on")
    }
    triggers: dict[str, int] = {}  # an `on` as JSON -> its number in index["on"]
    for number, file in enumerate(files):
        info = os.stat(file)
        data, _ = read_bytes(file, str(file), max_bytes=MAX_FILE_BYTES)
        docs, _ = parse_yaml_bytes(data or b"", str(file))
        index["paths"].append(file.relative_to(folder).as_posix())
        index["sizes"].append(info.st_size)
        index["mtimes"].append(info.st_mtime_ns)
        index["digests"].append(content_digest(data or b""))
        for doc in docs:
            value = doc.value if isinstance(doc.value, dict) else {}
            metadata = value.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            spec = value.get("spec")
            spec = spec if isinstance(spec, dict) else {}
            on = None
            if value.get("kind") == STEP_KIND:
                raw = effective_on[name] if name in effective_on else spec.get("on")
                on = triggers.setdefault(json.dumps(raw, sort_keys=True), len(index["on"]))
                if on == len(index["on"]):
                    index["on"].append(raw)
            uses = spec.get("uses") if isinstance(spec.get("uses"), str) else None
            index["docs"].append([number, value.get("kind"), name, on, uses])
    return index


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
    if not isinstance(index, dict) or not (names or context):
        return None
    try:
        return _needed(folder, index, names, context)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # damaged: not used
        return None


def _needed(
    folder: Path,
    index: dict[str, Any],
    names: Sequence[str],
    context: tuple[str, str, str | None] | None,
) -> Needed | None:
    paths: list[str] = index["paths"]
    if not _fresh(folder, paths, index["sizes"], index["mtimes"]):
        return None
    docs: list[list[Any]] = index["docs"]
    # Names are unique in a valid folder: steps and templates share one set of them.
    steps = {doc[2]: doc[0] for doc in docs if doc[1] == STEP_KIND}  # name -> its file
    templates = {doc[2]: doc[0] for doc in docs if doc[1] == TEMPLATE_KIND}
    uses: dict[int, list[str]] = {}  # file -> the `uses` of its documents
    for doc in docs:
        if isinstance(doc[4], str):
            uses.setdefault(doc[0], []).append(doc[4])
    if names:
        if any(name not in steps for name in names):
            return None  # the full scan says which, with a did-you-mean
        wanted = [steps[name] for name in names]
    else:
        from runner.stepfile.build import build_trigger

        assert context is not None
        matching = [build_trigger(on).matches(*context) for on in index["on"]]
        wanted = [doc[0] for doc in docs if doc[1] == STEP_KIND and matching[doc[3]]]
        if not wanted:
            return None  # the warning explains each step's `on`: it needs them all
    numbers = {path: number for number, path in enumerate(paths)}
    chosen: set[int] = set()
    while wanted:
        file = wanted.pop()
        if file in chosen:
            continue
        chosen.add(file)
        for used in uses.get(file, ()):
            target = _template_file(used, paths[file], templates, paths)
            # Not in the index (a built-in template, a file outside the folder): the loader
            # reads it itself, as it does in a full load.
            if target in numbers:
                wanted.append(numbers[target])
    order = sorted(chosen)
    return Needed([folder / paths[n] for n in order], [str(index["digests"][n]) for n in order])


def _template_file(uses: str, user: str, templates: dict[str, int], paths: list[str]) -> str | None:
    """The folder's file (its index path) holding the template `uses` names, if it has one:
    a name (no "/"), or a path relative to the using file `user`."""
    if "/" not in uses:
        return paths[templates[uses]] if uses in templates else None
    return posixpath.normpath(posixpath.join(posixpath.dirname(user), uses))


def _fresh(folder: Path, paths: list[str], sizes: list[int], mtimes: list[int]) -> bool:
    """Whether the folder's step files are those indexed, with the same sizes and mtimes."""
    try:
        found = _walk(folder)
    except OSError:
        return False
    recorded = dict(zip(paths, zip(sizes, mtimes, strict=True), strict=True))
    if found == recorded:
        return True
    if found.keys() != recorded.keys():
        return False
    for path, (size, mtime) in recorded.items():  # mtimes an image may have cut to seconds
        now_size, now_mtime = found[path]
        if now_size != size or not _same_mtime(now_mtime, mtime):
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
    """Each step file's path in `folder` (POSIX), with its size and mtime_ns."""
    found: dict[str, tuple[int, int]] = {}
    for path, entry in walk_step_files(folder):
        info = entry.stat()
        found[path] = (info.st_size, info.st_mtime_ns)
    return found
