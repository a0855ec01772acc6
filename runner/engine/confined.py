"""Copying and writing files without following a symbolic link: what `output:` copies and the
manifests a step writes land in the output folder, and nowhere else.

The commands may have left anything in the workdir and the output folder, links included (a
cloned repository, an unpacked archive). Below a root that is trusted as given (the workdir, the
output folder: mounts or `--output`), every folder is opened with O_NOFOLLOW relative to its
parent's descriptor, and every file is written to a new temporary name (O_CREAT|O_EXCL|
O_NOFOLLOW) in that folder, then renamed over its final name. So a link swapped in while a copy
runs is never followed either: at worst the copy fails, inside the output folder.

A link is refused wherever it points: one that stays inside would copy a file twice or loop,
one that leads out would copy (or overwrite) a file outside, and telling them apart is itself
a race.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runner.base.files import entry_below

__all__ = ["NotMade", "Refused", "check_target", "copy_below", "write_below"]

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a named pipe swapped in for a file must not block the open.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class Refused(Exception):
    """A path a copy or write will not go through: a symbolic link, or not a regular file.

    ``side`` says whether it is in what is copied ("source") or where it goes ("target")."""

    def __init__(self, path: Path, problem: str, side: Literal["source", "target"]) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path
        self.side = side


class NotMade(FileNotFoundError):
    """What a copy should read is not there."""


def _parts(relative: str) -> list[str]:
    """The components of a relative path after normpath; [] for the folder itself."""
    norm = os.path.normpath(relative)
    return [] if norm == "." else norm.split("/")


def _refuse_odd(dir_fd: int, name: str, shown: Path, side: Literal["source", "target"]) -> None:
    """Raise Refused when `name` in the folder is a link (or, in a source, not a file or
    folder); return when it is missing or fine."""
    entry = entry_below(dir_fd, name)
    if entry is None:
        return
    found, to = entry
    if to is not None:
        raise Refused(shown, f"is a symbolic link (to {to})", side)
    if side == "source" and not (stat.S_ISDIR(found.st_mode) or stat.S_ISREG(found.st_mode)):
        raise Refused(shown, "is not a regular file or folder", side)


def _open_folder(
    dir_fd: int, name: str, shown: Path, side: Literal["source", "target"], create: bool = False
) -> int:
    """The folder `name` in dir_fd, never through a link; made first when `create`."""
    for _ in range(2):
        try:
            return os.open(name, _FOLDER, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, dir_fd=dir_fd)
            except FileExistsError:
                pass  # made meanwhile: open it (and look at what it is) again
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                _refuse_odd(dir_fd, name, shown, side)
            raise
    return os.open(name, _FOLDER, dir_fd=dir_fd)


@contextmanager
def _descriptor(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _walk(
    root: Path, parts: list[str], side: Literal["source", "target"], create: bool = False
) -> Iterator[int]:
    """A descriptor of root/parts, each part opened without following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root as given
    shown = root
    try:
        for part in parts:
            shown = shown / part
            inner = _open_folder(fd, part, shown, side, create)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _entries(fd: int, shown: Path) -> Iterator[tuple[str, bool]]:
    """(name, is a folder) for each entry of a source folder; a link or special file is
    Refused."""
    with os.scandir(fd) as found:
        for entry in sorted(found, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False):
                yield entry.name, True
            elif entry.is_file(follow_symlinks=False):
                yield entry.name, False
            else:
                _refuse_odd(fd, entry.name, shown / entry.name, "source")


def _check_source_tree(fd: int, shown: Path) -> None:
    for name, folder in _entries(fd, shown):
        if folder:
            with _descriptor(_open_folder(fd, name, shown / name, "source")) as inner:
                _check_source_tree(inner, shown / name)


def _check_target_tree(fd: int, shown: Path) -> None:
    """Refuse a link anywhere below an existing target folder."""
    with os.scandir(fd) as found:
        entries = sorted(found, key=lambda e: e.name)
    for entry in entries:
        if entry.is_symlink():
            _refuse_odd(fd, entry.name, shown / entry.name, "target")
        elif entry.is_dir(follow_symlinks=False):
            with _descriptor(_open_folder(fd, entry.name, shown / entry.name, "target")) as inner:
                _check_target_tree(inner, shown / entry.name)


@dataclass(frozen=True)
class _Plan:
    folder: list[str]  # the target folder's parts below the root
    name: str | None  # the file's name in it; None when a folder is copied


def _plan_target(root: Path, target: str, source_is_folder: bool, source_name: str) -> _Plan:
    """Where a copy goes, checked for links on the way and below; nothing is made yet."""
    parts = _parts(target)
    if source_is_folder:
        plan = _Plan(parts, None)
    elif not parts or target.endswith("/"):
        plan = _Plan(parts, source_name)  # `to: app/`: into that folder
    else:
        plan = _Plan(parts[:-1], parts[-1])
    existing = _existing_prefix(root, parts, source_is_folder)
    if not source_is_folder and existing == parts and parts and not target.endswith("/"):
        plan = _Plan(parts, source_name)  # `to: app` names a folder that is there: into it
    return plan


def _existing_prefix(root: Path, parts: list[str], check_below: bool) -> list[str]:
    """The leading parts of root/parts that exist as folders, refusing a link among them (and
    anywhere below the last when `check_below` and all exist); a file at the last part is
    checked for being a link too."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []  # no folder yet (a plan without --output): no link on the way either
    shown, done = root, list[str]()
    try:
        for part in parts:
            shown = shown / part
            try:
                inner = _open_folder(fd, part, shown, "target")
            except (FileNotFoundError, NotADirectoryError):
                return done  # missing (made later), or a file (replaced, or an error later)
            os.close(fd)
            fd, done = inner, [*done, part]
        if check_below:
            _check_target_tree(fd, shown)
        return done
    finally:
        os.close(fd)


def check_target(root: Path, relative: str) -> None:
    """Refuse a link on the way to the file root/relative, or at it."""
    _existing_prefix(root, _parts(relative), check_below=False)


def write_below(
    root: Path, relative: str, data: bytes = b"", *, chunks: Iterable[bytes] | None = None
) -> Path:
    """Write root/relative (folders made as needed) without following a link; returns the path.
    The file holds `data`, or each of `chunks` in turn (a large file, never whole in memory).

    Raises Refused for a link on the way or at the file, OSError for the rest."""
    parts = _parts(relative)
    if not parts or parts[0] == "..":
        raise ValueError(f"{relative!r} is not a file below {root}")
    with _walk(root, parts[:-1], "target", create=True) as fd:
        _write_file(fd, parts[-1], root.joinpath(*parts), data=data, chunks=chunks, sync=True)
    return root.joinpath(*parts)


def copy_below(workdir: Path, source: str, root: Path, target: str) -> Path:
    """Copy workdir/source (a file, or a folder's contents) to root/target; returns where.

    `source` may climb out of the workdir with a leading `..` as written; below that, no part
    of it nor anything in it may be a link. Nothing is written until the source and the target
    are checked: Refused (with its side), NotMade when the source is missing, or OSError."""
    parts = _parts(source)
    climb = 0
    while climb < len(parts) and parts[climb] == "..":
        climb += 1
    base = workdir.joinpath(*parts[:climb]) if climb else workdir
    below = parts[climb:]
    shown = Path(os.path.normpath(workdir / source))
    target_parts = _parts(target)
    if target_parts[:1] == [".."]:
        raise ValueError(f"{target!r} is outside {root}")
    found, name = _open_source(base, below, shown)
    with _descriptor(found) as fd:
        folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        if folder:
            _check_source_tree(fd, shown)
        elif not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(shown, "is not a regular file or folder", "source")
        plan = _plan_target(root, target, folder, name)
        with _walk(root, plan.folder, "target", create=True) as out:
            where = root.joinpath(*plan.folder)
            if plan.name is None:
                _copy_tree(fd, shown, out, where)
                return where
            _write_file(out, plan.name, where / plan.name, source_fd=fd)
            return where / plan.name


def _open_source(base: Path, below: list[str], shown: Path) -> tuple[int, str]:
    """A descriptor of base/below and its name; FileNotFoundError when it is not there."""
    try:
        with _walk(base, below[:-1], "source") as parent:
            if not below:
                return os.dup(parent), base.name
            name = below[-1]
            _refuse_odd(parent, name, shown, "source")
            try:
                return os.open(name, _READ, dir_fd=parent), name
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a link swapped in since
                    _refuse_odd(parent, name, shown, "source")
                raise
    except (FileNotFoundError, NotADirectoryError):
        raise NotMade(errno.ENOENT, os.strerror(errno.ENOENT), str(shown)) from None


def _copy_tree(src: int, shown: Path, out: int, where: Path) -> None:
    for name, folder in _entries(src, shown):
        if folder:
            with (
                _descriptor(_open_folder(src, name, shown / name, "source")) as inner,
                _descriptor(_open_folder(out, name, where / name, "target", create=True)) as sub,
            ):
                _copy_tree(inner, shown / name, sub, where / name)
            continue
        try:
            fd = os.open(name, _READ, dir_fd=src)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                _refuse_odd(src, name, shown / name, "source")
            raise
        with _descriptor(fd):
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Refused(shown / name, "is not a regular file or folder", "source")
            _write_file(out, name, where / name, source_fd=fd)


def _write_file(
    dir_fd: int,
    name: str,
    shown: Path,
    *,
    data: bytes | None = None,
    chunks: Iterable[bytes] | None = None,
    source_fd: int | None = None,
    sync: bool = False,
) -> None:
    """Write `data`, or the file open at `source_fd` (its mode and times too), to a new
    temporary file in the folder, then rename it over `name`: never through a link, and
    readers see the old file or the new, never half."""
    _refuse_odd(dir_fd, name, shown, "target")
    temporary = f".runner-{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, _NEW, 0o666, dir_fd=dir_fd)
    try:
        with _descriptor(fd):
            if source_fd is not None:
                _copy_bytes(source_fd, fd)
                was = os.fstat(source_fd)
                os.fchmod(fd, stat.S_IMODE(was.st_mode))
                os.utime(fd, ns=(was.st_atime_ns, was.st_mtime_ns))
            else:
                for chunk in (data or b"",) if chunks is None else chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _copy_bytes(source: int, target: int) -> None:
    os.set_blocking(source, True)
    while chunk := os.read(source, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]
