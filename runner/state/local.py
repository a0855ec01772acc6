"""State in a folder: the embedded default outside a cluster, and what `runner test` uses.

Layout: `ROOT/NAMESPACE/NAME/` holds generations `g-<n>/` (one file per key, plus
`labels.json`) and a symlink `current` to the newest. A save writes a new generation and then
renames a fresh symlink over `current`: a reader, or a crash at any moment, sees the old set of
files or the new, never a mix. The lock is `flock` on `NAME.lock`, which the kernel releases
when a holder dies, so a killed run never leaves a stale lock. The lock file is never removed
(not with the state either): a run that waits on it would lock a file nobody else sees. If it
goes anyway, a waiter that gets the lock finds the path names another file, and locks that.

A state's version names the generation `current` points to (and that folder's inode and
mtime, as numbers restart after a removal). A save checks it against `expected` and commits
holding `flock` on the state's folder, so two saves can't both pass the check.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runner.base.errors import LockHeld, StoreError
from runner.platform import interrupts
from runner.state.base import (
    UNCHECKED,
    DerivedName,
    Expected,
    HeldLock,
    Loaded,
    StateRef,
    StateStore,
    WaitNotice,
    changed_since_read,
)

if TYPE_CHECKING:
    from runner.platform.log import Logger

_CURRENT = "current"
_LABELS = "labels.json"


class LocalStore(StateStore):
    kind = "local"
    location_usage = "DIR"
    default_location = ".runner-state"  # in the current folder, unless $RUNNER_STATE_DIR says
    compresses = False  # files kept as they are: an encrypted state is not compressed either

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> LocalStore:
        """`local:DIR`, else `$RUNNER_STATE_DIR`, else `.runner-state` in the current folder."""
        return cls(Path(location or environ.get("RUNNER_STATE_DIR") or cls.default_location))

    def _dir(self, ref: StateRef) -> Path:
        return self.root / ref.namespace / ref.name

    @classmethod
    def derived_names(cls, name: str) -> tuple[DerivedName, ...]:
        """The lock file beside the state's folder, `NAME.lock`: a file name too."""
        return (DerivedName("lock file", "NAME.lock", f"{name}.lock"),)

    def describe(self, ref: StateRef) -> str:
        return f"local {self._dir(ref)}"

    @staticmethod
    def key_problem(key: str) -> str | None:
        """Each key is a file name in a generation folder, beside the store's own labels.json."""
        if key == _LABELS:
            return f"the local store keeps its own {_LABELS} beside the state files"
        if key in ("", ".", ".."):
            return 'a file name can\'t be empty, "." or ".."'
        if "/" in key or "\0" in key:
            return "a file name can't hold '/' or a NUL character"
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > 255:
            return f"a file name has at most 255 bytes (this one has {size})"
        return None

    def load(self, ref: StateRef) -> Loaded | None:
        folder = self._dir(ref)
        current = folder / _CURRENT
        if not os.path.lexists(current):
            return None
        try:
            generation = current.resolve(strict=True)
            # Only a generation of this state, holding only files: never read what a link
            # leads to elsewhere (and a broken store is no "no state": that would start over).
            if generation.parent != folder.resolve():
                raise StoreError(
                    f"state {self.describe(ref)} is broken: {current} leads outside it"
                )
            version = _version(generation)
            names = [p for p in generation.iterdir() if p.name != _LABELS]
            if any(p.is_symlink() or not p.is_file() for p in names):
                raise StoreError(
                    f"state {self.describe(ref)} is broken: it holds a link or a folder"
                )
            return Loaded({p.name: p.read_bytes() for p in names}, version)
        except FileNotFoundError:
            raise StoreError(
                f"state {self.describe(ref)} is broken: {current} leads to nothing"
            ) from None
        except RuntimeError:  # a link loop
            raise StoreError(
                f"state {self.describe(ref)} is broken: {current} is a link loop"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read state {self.describe(ref)}: {exc.strerror}") from exc

    def _current_version(self, folder: Path) -> str | None:
        try:
            return _version((folder / _CURRENT).resolve(strict=True))
        except (FileNotFoundError, RuntimeError):
            return None  # a save of a broken state then finds it changed: it refuses

    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        for key in files:
            problem = self.key_problem(key)
            if problem is not None:
                raise StoreError(f"cannot save state {self.describe(ref)}: key {key!r}: {problem}")
        folder = self._dir(ref)
        made: list[Path] = []  # what this save created, removed again if it fails
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging = folder / f".g-new.{os.getpid()}.{time.monotonic_ns()}.tmp"
            staging.mkdir()
            made.append(staging)
            for key, data in files.items():
                _write_synced(staging / key, data)
            _write_synced(staging / _LABELS, json.dumps(ref.labels(), indent=2).encode())
            with _flocked(folder):  # the check and the commit, one save at a time
                if expected is not UNCHECKED and self._current_version(folder) != expected:
                    raise changed_since_read(self.describe(ref))
                generation = folder / f"g-{self._next_generation(folder)}"
                os.rename(staging, generation)
                made.append(generation)
                link = folder / f".{_CURRENT}.{os.getpid()}.tmp"
                link.unlink(missing_ok=True)
                os.symlink(generation.name, link)
                made.append(link)
                os.replace(link, folder / _CURRENT)  # the commit point
                made.clear()
                version = _version(generation)
            _fsync_dir(folder)
        except StoreError:
            _discard(made)
            raise
        except OSError as exc:
            _discard(made)
            raise StoreError(
                f"cannot save state {self.describe(ref)}: {exc.strerror or exc}; the previous state is kept"
            ) from exc
        self._prune(folder, keep=generation.name)
        return version

    def remove(self, ref: StateRef) -> bool:
        folder = self._dir(ref)
        existed = folder.exists()
        shutil.rmtree(folder, ignore_errors=True)
        # NAME.lock stays: a run waiting for it holds it open, and would take the lock of an
        # unlinked file while the next run locks a new one (two holders at once).
        return existed

    def _lock_path(self, ref: StateRef) -> Path:
        return self.root / ref.namespace / f"{ref.name}.lock"

    @contextmanager
    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> Iterator[HeldLock]:
        path = self._lock_path(ref)
        deadline = time.monotonic() + wait_seconds
        notice = WaitNotice(log, ref.step, wait_seconds)
        while True:
            fd = _open_lock(path)
            try:
                if self._wait_for(fd, path, ref, deadline, notice):
                    break
            except BaseException:
                os.close(fd)
                raise
            # The file was removed or replaced while we waited (by hand, or by a version that
            # removed it with the state): its lock guards nothing; lock the file there now.
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield HeldLock(f"the lock of state {self.describe(ref)}")
        finally:
            os.close(fd)  # closing releases the flock

    def _wait_for(
        self, fd: int, path: Path, ref: StateRef, deadline: float, notice: WaitNotice
    ) -> bool:
        """flock fd, waiting until the deadline (LockHeld after it); then whether fd is still
        the file at `path`."""
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another run"
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"state {self.describe(ref)} is locked by {holder}",
                        retry_after_seconds=30,
                    ) from None
                notice(f"the lock of state {self.describe(ref)}", holder)
                interrupts.pause(0.05)
        held = os.fstat(fd)
        try:
            there = os.stat(path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    def unlock(self, ref: StateRef) -> bool:
        # flock locks die with their holder; there is never a stale one to break.
        return False

    @staticmethod
    def _next_generation(folder: Path) -> int:
        numbers = [int(p.name[2:]) for p in folder.glob("g-*") if p.name[2:].isdigit()]
        return max(numbers, default=0) + 1

    @staticmethod
    def _prune(folder: Path, keep: str) -> None:
        """Drop older generations, and staging left by runs that crashed over an hour ago."""
        kept = int(keep[2:])
        for old in folder.glob("g-*"):
            if old.name[2:].isdigit() and int(old.name[2:]) < kept:
                shutil.rmtree(old, ignore_errors=True)
        cutoff = time.time() - 3600
        for stale in folder.glob(".*.tmp"):
            if stale.lstat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()


def _open_lock(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create lock {path}: {exc.strerror}") from exc


def _discard(made: list[Path]) -> None:
    for path in made:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _version(generation: Path) -> str:
    """A generation's version: its name, and its folder's inode and mtime."""
    stat = generation.stat()
    return f"{generation.name}@{stat.st_ino}.{stat.st_mtime_ns}"


@contextmanager
def _flocked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    # 0600: a state holds every generated password; the folder's others may not read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
