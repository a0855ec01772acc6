"""A dict-backed state store: what a new store needs to be, and nothing more.

`memory` keeps every state in one dict; `memory:FILE` also keeps that dict in a JSON file
(rewritten whole, atomically, at each change) so that successive `runner` processes share it.
Locks are held in this process only. It passes tests/test_store_contract.py, like every store.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from runner.base.errors import LockHeld, StoreError
from runner.platform import interrupts
from runner.state.base import (
    UNCHECKED,
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

_LOCKS: dict[tuple[str, str, str], str] = {}  # (file, namespace, name) -> holder, this process
_MUTEX = threading.Lock()


class MemoryStore(StateStore):
    kind = "memory"
    location_usage = "FILE"

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._states: dict[str, dict[str, object]] = {}  # "namespace/name" -> state
        self._me = uuid.uuid4().hex[:8]

    @classmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> MemoryStore:
        return cls(Path(location) if location else None)

    def describe(self, ref: StateRef) -> str:
        return f"memory {ref.namespace}/{ref.name}"

    @staticmethod
    def key_problem(key: str) -> str | None:
        return None if key and "\0" not in key else "a key is a non-empty string without NUL"

    # -- the dict, and its file ------------------------------------------------------------
    def _read(self) -> dict[str, dict[str, object]]:
        if self.file is None:
            return self._states
        try:
            return json.loads(self.file.read_text("utf-8"))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {self.file}: {exc}") from None

    def _write(self, states: dict[str, dict[str, object]]) -> None:
        if self.file is None:
            self._states = states
            return
        staging = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps(states), "utf-8")
        os.replace(staging, self.file)

    # -- the interface -----------------------------------------------------------------------
    def load(self, ref: StateRef) -> Loaded | None:
        state = self._read().get(_id(ref))
        if state is None:
            return None
        files = {k: base64.b64decode(v) for k, v in state["files"].items()}  # type: ignore[attr-defined]
        return Loaded(files, str(state["version"]))

    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        for key in files:
            if (problem := self.key_problem(key)) is not None:
                raise StoreError(f"cannot save state {self.describe(ref)}: key {key!r}: {problem}")
        with _MUTEX:
            states = self._read()
            current = states.get(_id(ref))
            if expected is not UNCHECKED and (current or {}).get("version") != expected:
                raise changed_since_read(self.describe(ref))
            version = uuid.uuid4().hex
            states[_id(ref)] = {
                "files": {k: base64.b64encode(v).decode() for k, v in files.items()},
                "labels": ref.labels(),
                "version": version,
            }
            self._write(states)
        return version

    def labels(self, ref: StateRef) -> dict[str, str]:
        """The labels stored with a state (a test store may show what it keeps)."""
        return self._read()[_id(ref)]["labels"]  # type: ignore[return-value]

    def remove(self, ref: StateRef) -> bool:
        with _MUTEX:
            states = self._read()
            existed = states.pop(_id(ref), None) is not None
            self._write(states)
        self.unlock(ref)
        return existed

    @contextmanager
    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> Iterator[HeldLock]:
        key, deadline = self._lock_key(ref), time.monotonic() + wait_seconds
        notice = WaitNotice(log, ref.step, wait_seconds)
        while True:
            with _MUTEX:
                holder = _LOCKS.setdefault(key, self._me)
            if holder == self._me:
                break
            if time.monotonic() >= deadline:
                raise LockHeld(f"state {self.describe(ref)} is locked by {holder}", 30)
            notice(f"the lock of state {self.describe(ref)}", holder)
            interrupts.pause(0.05)
        try:
            yield HeldLock(f"the lock of state {self.describe(ref)}")
        finally:
            with _MUTEX:
                if _LOCKS.get(key) == self._me:
                    del _LOCKS[key]

    def unlock(self, ref: StateRef) -> bool:
        with _MUTEX:
            return _LOCKS.pop(self._lock_key(ref), None) is not None

    def _lock_key(self, ref: StateRef) -> tuple[str, str, str]:
        where = str(self.file.resolve()) if self.file else f"dict-{id(self)}"
        return (where, ref.namespace, ref.name)


def _id(ref: StateRef) -> str:
    return f"{ref.namespace}/{ref.name}"
