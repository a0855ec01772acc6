"""A step's state around its commands: restored into the workdir before them, saved (or
removed) after them, each save expecting the version restored and refused once the lock is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from runner.base.errors import Problem, StoreError
from runner.engine.fileerrors import os_reason
from runner.engine.policy import StatePolicy
from runner.platform import interrupts
from runner.platform.log import Logger, seconds
from runner.resolve.prepare import PreparedStep
from runner.resolve.secrets import make_secret
from runner.state.base import (
    UNCHECKED,
    Expected,
    HeldLock,
    Loaded,
    StateRef,
    StateStore,
    changed_since_read,
    digest,
)
from runner.stepfile.model import GENERATED_PREFIX, StateFile


class StatePhase:
    """Restores and saves the states of steps, telling `log` what it did."""

    def __init__(self, log: Logger) -> None:
        self.log = log

    def restore(
        self,
        prepared: PreparedStep,
        policy: StatePolicy | None,
        store: StateStore | None,
        workdir: Path,
    ) -> tuple[Restored | None, Expected, dict[str, str]]:
        """What was restored, the version a save of this state expects, and the step's
        generated secrets (kept, or made now)."""
        ref = prepared.state_ref
        if store is None or ref is None or policy is None:
            return None, UNCHECKED, {}
        fields = {"step": prepared.step.name}
        for absent in prepared.key_problems:  # fallback keys not there (the rest was exit 2)
            self.log.warning(absent.format(), **fields)
        started = time.monotonic()
        loaded = store.load(ref)
        generated: dict[str, str] = {}
        if prepared.step.generated:
            loaded, generated = self._generated(prepared, policy, store, ref, loaded)
        stored = loaded.files if loaded is not None else {}
        written: set[str] = set()
        for item in prepared.step.state.files:
            interrupts.stop_if_received()  # nothing to undo: the commands have not run
            target = workdir / item.path
            try:
                if item.key in stored:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(stored[item.key])
                    written.add(item.key)
                else:
                    # The store is the truth: a stale file from an earlier run must not be used.
                    target.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot restore {item.path} into {workdir}: {os_reason(exc)} "
                    f"(the stored state in {store.describe(ref)} is untouched)"
                ) from None
        if loaded is None:
            self.log.info(f"no stored state in {store.describe(ref)}: starting fresh", **fields)
            return None, None, generated  # a save expects there to be none still
        size = sum(len(v) for v in stored.values())
        self.log.info(
            f"restored state from {store.describe(ref)} ({size} bytes) in "
            f"{seconds(time.monotonic() - started)}",
            event="state-restore",
            **fields,
        )
        # The restored files are on disk now: keep only what tells whether the commands
        # changed anything (digest, sizes) and the stored entries no state file holds.
        restored = Restored(
            digest="" if loaded.stale else digest(stored),  # stale: never "unchanged"
            sizes={k: len(v) for k, v in stored.items()},
            others={k: v for k, v in stored.items() if k not in written},
            written=frozenset(written),
        )
        return restored, loaded.version, generated

    def _generated(
        self,
        prepared: PreparedStep,
        policy: StatePolicy,
        store: StateStore,
        ref: StateRef,
        loaded: Loaded | None,
    ) -> tuple[Loaded | None, dict[str, str]]:
        """The step's generated secrets: each one kept in the state, or made now. A new one is
        saved at once, before any command runs, whatever `save:` says: a command may set it
        on a server and then fail, and a value lost then would leave the server's unknown.
        The masker learns each value before anything can print it."""
        fields = {"step": prepared.step.name}
        stored = loaded.files if loaded is not None else {}
        values: dict[str, str] = {}
        made: dict[str, bytes] = {}
        for secret in prepared.step.generated:
            assert secret.generate is not None
            if secret.state_key in stored:
                values[secret.name] = _kept(store, ref, secret.name, stored[secret.state_key])
            else:
                values[secret.name] = value = make_secret(secret.generate)
                made[secret.state_key] = value.encode("utf-8")
            warning = self.log.masker.add(secret.name, values[secret.name])
            if warning:
                self.log.warning(warning, **fields)
        if not made:
            kept = ", ".join(values)
            self.log.info(f"generated secret {kept}: kept in {store.describe(ref)}", **fields)
            return loaded, values
        names = ", ".join(n for n in values if GENERATED_PREFIX + n in made)
        if policy.save == "never" or policy.remove:
            why = "a dry run saves nothing" if policy.save == "never" else "the state is removed"
            self.log.info(f"generated secret {names} for this run only: {why}", **fields)
            return loaded, values
        files = {**stored, **made}
        try:
            version = store.save(ref, files, loaded.version if loaded is not None else None)
        except StoreError as exc:
            first, *rest = exc.problems or [Problem("refused")]
            head = f"could not save generated secret {names} to {store.describe(ref)}: "
            raise StoreError(replace(first, message=head + first.message), *rest) from None
        self.log.info(
            f"generated secret {names}: saved to {store.describe(ref)} before the commands run",
            event="secret-generate",
            **fields,
        )
        return Loaded(files, version), values

    def finish(
        self,
        prepared: PreparedStep,
        policy: StatePolicy | None,
        store: StateStore | None,
        workdir: Path,
        stored: Restored | None,
        failure: str | None,
        expected: Expected = UNCHECKED,
        held: HeldLock | None = None,
    ) -> None:
        """Save (or remove) the state as the policy says; a save expects the version restored,
        and is refused once the lock is lost."""
        ref = prepared.state_ref
        if store is None or ref is None or policy is None or policy.save == "never":
            return
        fields = {"step": prepared.step.name}
        state = prepared.step.state
        if failure is None and policy.remove:
            removed = store.remove(ref)
            self.log.info(
                f"removed state {store.describe(ref)}" if removed else "no state to remove",
                **fields,
            )
            return
        if failure is not None and policy.save != "always":
            self.log.info("not saving state: the step failed and save is on-success", **fields)
            return
        files = dict(stored.others) if stored else {}
        found = False
        gone = []  # restored files the commands removed: their stored value is kept, as before
        # State files that can't be read are left out and reported once the others are saved
        # (their keys were checked before the commands ran, in prepare): losing the rest with
        # them would not save them.
        refused: list[Problem] = []
        for index, item in enumerate(state.files):
            path = workdir / item.path
            if path.is_file():
                try:
                    files[item.key] = path.read_bytes()
                except OSError as exc:
                    refused.append(_unreadable(prepared, index, item, exc))
                    continue
                found = True
            elif stored is not None and item.key in stored.written:
                gone.append(item.key)
        if not found:
            if refused:
                raise StoreError(*_noted(refused, "no state file was saved"))
            self.log.info("no state files were written: nothing to save", **fields)
            return
        if stored is not None and gone:
            # Rare: read those values back rather than keep every state in memory meanwhile.
            # (The save expects the version restored: it refuses if the state moved since.)
            again = store.load(ref)
            if again is None or not again.files.keys() >= set(gone):
                raise changed_since_read(store.describe(ref))
            files.update((key, again.files[key]) for key in gone)
            del again
        if (
            stored is not None
            and {k: len(v) for k, v in files.items()} == stored.sizes
            and digest(files) == stored.digest
        ):
            self.log.info("state unchanged: not saved again", **fields)
        else:
            started = time.monotonic()
            try:
                if held is not None and (lost := held.lost_reason()) is not None:
                    raise StoreError(
                        f"lost {held.describe()} while the commands ran ({lost}); not saving "
                        "over what another run may have saved"
                    )
                store.save(ref, files, expected)
            except StoreError as exc:
                # Which state, which files: the store's own words may name neither.
                saving = ", ".join(f.path for f in state.files if f.key in files)
                head = f"could not save {saving} to {store.describe(ref)}: "
                first, *rest = exc.problems or [Problem("refused")]
                raise StoreError(replace(first, message=head + first.message), *rest) from None
            size = sum(len(v) for v in files.values())
            self.log.info(
                f"saved state to {store.describe(ref)} ({size} bytes) in "
                f"{seconds(time.monotonic() - started)}",
                event="state-save",
                **fields,
            )
        if refused:
            raise StoreError(*_noted(refused, "the other state files were saved"))


@dataclass(frozen=True)
class Restored:
    """What a step's restore keeps in memory: not the state, which is in the workdir now."""

    digest: str  # runner.state.base.digest of the state as stored
    sizes: dict[str, int]  # each stored entry's size: most changes show without hashing
    others: dict[str, bytes]  # stored entries no state file holds: saved back as they are
    written: frozenset[str]  # the keys restored into state files


MIN_GENERATED_LENGTH = 8  # the schema's least `length`


def _kept(store: StateStore, ref: StateRef, name: str, data: bytes) -> str:
    """A generated secret as the state keeps it; one that can't be a secret's value is an error,
    never a reason to make another (the one in use would be lost)."""
    try:
        value = data.decode("utf-8").removesuffix("\n")
    except UnicodeDecodeError:
        value = ""
    # Shorter than any length `generate` makes, or not printable text (a NUL can't even reach
    # a command's environment): not a value this runner made, and too weak to be masked safely.
    if len(value) < MIN_GENERATED_LENGTH or not value.isprintable():
        raise StoreError(
            Problem(
                f"state {store.describe(ref)} holds generated secret {name}, but it is not "
                f"printable text of at least {MIN_GENERATED_LENGTH} characters; not making "
                "another, which would not match the one in use",
                hint=f"store the value under the key {GENERATED_PREFIX}{name}, or remove the "
                "state to start afresh (runner state rm)",
            )
        )
    return value


def _unreadable(prepared: PreparedStep, index: int, item: StateFile, exc: OSError) -> Problem:
    return prepared.step.document.problem(
        ("spec", "state", "files", index, "path"),
        f"state file {item.path} was not saved: cannot read it: {os_reason(exc)}",
    )


def _noted(problems: list[Problem], note: str) -> list[Problem]:
    return [replace(p, hint=f"{p.hint}; {note}" if p.hint else note) for p in problems]
