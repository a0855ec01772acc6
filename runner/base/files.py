"""Files written whole or not at all."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class LinkRefused(OSError):
    """A symbolic link (or a file that is not a regular one) where a read follows none."""


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a named pipe put there must not block the open (reads are made blocking after).
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_below(root: Path, parts: Sequence[str]) -> int:
    """A read descriptor of the regular file root/parts, no part of which may be a link.

    `root` is trusted as given (links on the way to it are followed, as for any path the step's
    author wrote); every part below it is opened with O_NOFOLLOW relative to its folder's
    descriptor, so a link there, wherever it points, raises LinkRefused, and one swapped in
    meanwhile is never followed either. A missing part raises FileNotFoundError."""
    if not parts or any(part in ("", ".", "..") or "/" in part for part in parts):
        raise ValueError(f"not a file below {root}: {'/'.join(parts)!r}")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                inner = os.open(part, _READ if last else _FOLDER, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
                    _refuse(fd, part, root.joinpath(*parts[: index + 1]))
                raise
            os.close(fd)
            fd = inner
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "is a folder" if stat.S_ISDIR(mode) else "is not a regular file"
            raise LinkRefused(errno.EINVAL, what, str(root.joinpath(*parts)))
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def entry_below(dir_fd: int, name: str) -> tuple[os.stat_result, str | None] | None:
    """`name` in the folder as it is, not followed: its status and, for a symbolic link, where
    it points ("?" when unreadable); None when it is missing."""
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISLNK(found.st_mode):
        return found, None
    try:
        return found, os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return found, "?"


def _refuse(dir_fd: int, name: str, shown: Path) -> None:
    """Raise LinkRefused when `name` is a link; return otherwise (the caller re-raises)."""
    try:
        entry = entry_below(dir_fd, name)
    except OSError:
        return
    if entry is None:
        return
    found, to = entry
    if to is not None:
        raise LinkRefused(errno.ELOOP, f"is a symbolic link (to {to})", str(shown))
    if not stat.S_ISDIR(found.st_mode) and not stat.S_ISREG(found.st_mode):
        raise LinkRefused(errno.EINVAL, "is not a regular file", str(shown))
