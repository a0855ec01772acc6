"""Running prepared steps: workspace, lock, restore, commands, save, status and output."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from runner.errors import CommandFailed, Interrupted, InvalidError, LockHeld, Problem, StoreError
from runner.execute import Executor, Outcome
from runner.kratix import (
    KratixContext,
    WorkflowControl,
    request_workflow_control,
    status_problems,
    write_status,
)
from runner.log import Logger, seconds
from runner.prepare import PreparedCommand, PreparedStep
from runner.query import QueryError, compile_jmespath, compile_query
from runner.settings import DEFAULTS, Settings, format_duration
from runner.spec.model import StateFile, StatusFromFile
from runner.state import StoreSpec, open_store
from runner.state.base import (
    UNCHECKED,
    Expected,
    HeldLock,
    StateStore,
    changed_since_read,
    digest,
)


class Engine:
    def __init__(
        self,
        ctx: KratixContext,
        log: Logger,
        environ: Mapping[str, str],
        store_override: StoreSpec | None = None,
        settings: Settings = DEFAULTS,
    ) -> None:
        self.ctx = ctx
        self.log = log
        self.environ = dict(environ)
        self.store_override = store_override
        self.lock_wait = settings.lock_wait
        self.executor = Executor(log, settings.kill_grace, environ=self.environ)
        self._stores: dict[str, StateStore] = {}
        self._interruptible = False  # True while a signal may unwind the step at once

    # -- signals -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record it (logging here could re-enter a write to stderr). Waiting for a lock
        # or restoring is unwound at once; while commands run or state is saved, the
        # executor forwards the signal and the step stops after saving.
        self.executor.interrupt(signum)
        if self._interruptible:
            raise Interrupted(signum)

    def _check_interrupted(self) -> None:
        if self.executor.interrupted is not None:
            raise Interrupted(self.executor.interrupted)

    # -- stores --------------------------------------------------------------------------
    def store(self, kind: str) -> StateStore:
        if kind not in self._stores:
            override = self.store_override
            location = override.location_for(kind) if override else None
            self._stores[kind] = open_store(kind, location, self.environ)
        return self._stores[kind]

    def close(self) -> None:
        for store in self._stores.values():
            store.close()

    # -- a step ----------------------------------------------------------------------------
    def run_step(self, prepared: PreparedStep) -> None:
        """Run one step; raises CommandFailed, StoreError, Interrupted or InvalidError."""
        step = prepared.step
        fields = {"step": step.name}
        started = time.monotonic()
        mode = " (dry run)" if self.ctx.dry_run else ""
        self.log.info(f"step {step.name} started{mode}", event="step-start", **fields)
        ref = prepared.state_ref
        store = self.store(prepared.store) if ref else None
        with self._workspace(prepared) as workdir:
            lock: Any = nullcontext()
            if store is not None and ref is not None and step.state.lock and not self.ctx.dry_run:
                lock = store.lock(ref, self.lock_wait, self.log)
            try:
                self._interruptible = True  # nothing to save yet while waiting or restoring
                self._check_interrupted()
                if self.ctx.dry_run and not step.dry_run:
                    self.log.info("dry run: the step has no dryRun commands; none run", **fields)
                with lock as held:
                    stored, expected = self._restore(prepared, store, workdir)
                    self._interruptible = False
                    self._check_interrupted()
                    failure = self._run_commands(prepared, workdir, fields)
                    self._finish_state(prepared, store, workdir, stored, failure, expected, held)
            except LockHeld as exc:
                self._ask_to_retry(step.name, exc)
                raise
            finally:
                self._interruptible = False
            if self.executor.interrupted is not None:
                signame = signal.Signals(self.executor.interrupted).name
                self.log.warning(f"received {signame}: step stopped", **fields)
            self._check_interrupted()
            if failure:
                self._step_end(step.name, started, "failed")
                raise CommandFailed(f"step {step.name}: {failure}")
            # A dry run writes output and status too (Kratix diffs them against the live
            # request's); status last, so that it never reports a step whose output failed.
            self._copy_output(prepared, workdir)
            self._write_status(prepared, workdir)
        self._step_end(step.name, started, "succeeded")

    def _ask_to_retry(self, step: str, held: LockHeld) -> None:
        """Another run holds the lock: ask Kratix, in workflow-control.yaml, to retry later."""
        retry = format_duration(held.retry_after_seconds)
        reason = self.log.masker.mask(held.problems[0].message)
        wanted = WorkflowControl(retry_after=retry, message=f"step {step}: {reason}")
        try:
            now = request_workflow_control(self.ctx.metadata_dir, wanted)
        except OSError as exc:
            # Exiting 0 without the file would let Kratix mark the workflow done: fail instead.
            raise StoreError(
                f"step {step}: {reason}; and cannot ask Kratix to retry: "
                f"cannot write workflow-control.yaml: {_os_reason(exc)}"
            ) from None
        if now is wanted:
            self.log.info(
                f"{reason}: asked Kratix to retry in {retry} (workflow-control.yaml)", step=step
            )
        else:
            self.log.info(
                f"workflow-control.yaml already asks Kratix to {now.describe()}", step=step
            )

    def _step_end(self, name: str, started: float, status: str) -> None:
        duration = time.monotonic() - started
        verb = "failed after" if status == "failed" else "finished in"
        self.log.event(
            f"step {name} {verb} {seconds(duration)}",
            "error" if status == "failed" else "info",
            event="step-end",
            status=status,
            duration=round(duration, 3),
            step=name,
        )

    @contextmanager
    def _workspace(self, prepared: PreparedStep) -> Iterator[Path]:
        source = prepared.workdir
        if not source.is_dir():
            raise InvalidError(
                prepared.step.document.problem(
                    ("spec", "workdir"), f"workdir {source} does not exist"
                )
            )
        if not prepared.step.copy_workdir:
            yield source
            return
        scratch = Path(tempfile.mkdtemp(prefix=f"runner-{prepared.step.name}-"))
        try:
            workdir = scratch / source.name
            # Leftover state in the source must not stand in for the stored state.
            ignore = shutil.ignore_patterns(
                ".terraform", *(Path(f.path).name for f in prepared.step.state.files)
            )
            try:
                shutil.copytree(source, workdir, symlinks=True, ignore=ignore)
            except (shutil.Error, OSError) as exc:
                raise CommandFailed(
                    f"step {prepared.step.name}: cannot copy the workdir {source} to {scratch} "
                    f"(TMPDIR): {_os_reason(exc)}"
                ) from None
            yield workdir
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # -- state -------------------------------------------------------------------------------
    def _restore(
        self, prepared: PreparedStep, store: StateStore | None, workdir: Path
    ) -> tuple[_Restored | None, Expected]:
        """What was restored, and the version a save of this state expects."""
        ref = prepared.state_ref
        if store is None or ref is None or not prepared.commands:
            # No command would read it (a dry run without dryRun commands).
            return None, UNCHECKED
        fields = {"step": prepared.step.name}
        started = time.monotonic()
        loaded = store.load(ref)
        stored = loaded.files if loaded is not None else {}
        written: set[str] = set()
        for item in prepared.step.state.files:
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
                    f"cannot restore {item.path} into {workdir}: {_os_reason(exc)} "
                    f"(the stored state in {store.describe(ref)} is untouched)"
                ) from None
        if loaded is None:
            self.log.info(f"no stored state in {store.describe(ref)}: starting fresh", **fields)
            return None, None  # a save expects there to be none still
        size = sum(len(v) for v in stored.values())
        self.log.info(
            f"restored state from {store.describe(ref)} ({size} bytes) in "
            f"{seconds(time.monotonic() - started)}",
            event="state-restore",
            **fields,
        )
        # The restored files are on disk now: keep only what tells whether the commands
        # changed anything (digest, sizes) and the stored entries no state file holds.
        restored = _Restored(
            digest=digest(stored),
            sizes={k: len(v) for k, v in stored.items()},
            others={k: v for k, v in stored.items() if k not in written},
            written=frozenset(written),
        )
        return restored, loaded.version

    def _finish_state(
        self,
        prepared: PreparedStep,
        store: StateStore | None,
        workdir: Path,
        stored: _Restored | None,
        failure: str | None,
        expected: Expected = UNCHECKED,
        held: HeldLock | None = None,
    ) -> None:
        """Save (or remove) the state as the step says; a save expects the version restored,
        and is refused once the lock is lost."""
        ref = prepared.state_ref
        if store is None or ref is None or self.ctx.dry_run:
            return
        fields = {"step": prepared.step.name}
        state = prepared.step.state
        if failure is None and prepared.step.is_delete and state.on_delete == "remove":
            removed = store.remove(ref)
            self.log.info(
                f"removed state {store.describe(ref)}" if removed else "no state to remove",
                **fields,
            )
            return
        if failure is not None and state.save != "always":
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

    # -- commands --------------------------------------------------------------------------
    def _run_commands(
        self, prepared: PreparedStep, workdir: Path, fields: dict[str, Any]
    ) -> str | None:
        """Run the commands in order; the reason the step failed, or None."""
        step = prepared.step
        env = {**self.environ, **prepared.env, **prepared.secrets}
        deadline = time.monotonic() + step.timeout if step.timeout else None
        for index, command in enumerate(prepared.commands):
            if self.executor.interrupted is not None:
                return "interrupted"
            timeout = command.timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "step timed out"
                timeout = min(timeout, left) if timeout else left
            outcome = self._run_one(
                command, workdir, {**env, **command.env}, timeout, fields, index
            )
            if outcome.ok:
                continue
            reason = _reason(command, outcome)
            if outcome.signalled is not None:
                return reason
            if command.continue_on_error:
                self.log.warning(f"{reason}; continuing (continueOnError)", **fields)
                continue
            return reason
        return None

    def _run_one(
        self,
        command: PreparedCommand,
        workdir: Path,
        env: dict[str, str],
        timeout: float | None,
        fields: dict[str, Any],
        index: int,
    ) -> Outcome:
        cwd = (workdir / command.cwd).resolve()
        stdout = (cwd / command.stdout) if command.stdout else None
        described = command.describe()
        self.log.info(
            f"▶ {described}", event="command-start", command=described, index=index, **fields
        )
        outcome = self.executor.run(command.argv, cwd, env, timeout, stdout, fields)
        if outcome.ok:
            self.log.info(
                f"✔ {described} ({seconds(outcome.duration)})",
                event="command-end",
                exit_code=0,
                duration=round(outcome.duration, 3),
                index=index,
                **fields,
            )
        else:
            self.log.error(
                f"✖ {_reason(command, outcome)} ({seconds(outcome.duration)})",
                event="command-end",
                exit_code=outcome.exit_code,
                duration=round(outcome.duration, 3),
                index=index,
                **fields,
            )
        return outcome

    # -- results ---------------------------------------------------------------------------
    def _write_status(self, prepared: PreparedStep, workdir: Path) -> None:
        step = prepared.step
        values: dict[str, Any] = {}
        for key, value in prepared.status.items():
            if isinstance(value, StatusFromFile):
                found = self._status_from_file(prepared, workdir, key, value)
                if found is not None:
                    values[key] = found
            else:
                values[key] = value
        if not values:
            return
        problems = status_problems(values)
        if problems:
            raise CommandFailed(
                *(step.document.problem(("spec", "status"), f"status: {p}") for p in problems)
            )
        if self.ctx.workflow == "promise" and set(values) - {"message"}:
            others = ", ".join(k for k in values if k != "message")
            self.log.warning(
                f"status {others}: a Promise's status keeps only message (Kratix drops the rest)",
                step=step.name,
            )
        try:
            path = write_status(self.ctx.metadata_dir, self.log.masker.mask_values(values))
        except InvalidError as exc:
            # A command wrote status.yaml itself, and Kratix would refuse it.
            raise CommandFailed(*exc.problems) from None
        except OSError as exc:
            raise CommandFailed(
                f"cannot write status.yaml in {self.ctx.metadata_dir}: {_os_reason(exc)}"
            ) from None
        self.log.info(f"status: {', '.join(values)} → {path}", step=step.name)

    def _status_from_file(
        self, prepared: PreparedStep, workdir: Path, key: str, value: StatusFromFile
    ) -> Any:
        import yaml

        path = workdir / value.file
        step = prepared.step
        try:
            document = yaml.safe_load(path.read_text("utf-8"))
            query = (
                compile_query(value.expression)
                if value.language == "query"
                else compile_jmespath(value.expression)
            )
            found = query.search(document)
        except (OSError, yaml.YAMLError, UnicodeDecodeError, QueryError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            found, why = None, f"cannot read {value.file}: {reason}"
        else:
            why = f"{value.expression} found nothing in {value.file}"
        if found is None:
            if value.required and not self.ctx.dry_run:
                raise CommandFailed(step.document.problem(("spec", "status", key), why))
            self.log.warning(f"status {key}: {why}", step=step.name)
        return found

    def _copy_output(self, prepared: PreparedStep, workdir: Path) -> None:
        if prepared.step.output and self.ctx.action == "delete":
            # A delete Pipeline has no work-writer container: nothing reads /kratix/output.
            self.log.warning(
                "output: Kratix ignores the output of a delete workflow", step=prepared.step.name
            )
        out_root = self.ctx.output_dir.resolve()
        for copy in prepared.step.output:
            source = (workdir / copy.source).resolve()
            target = (out_root / copy.target).resolve()
            if not target.is_relative_to(out_root):
                # `validate` refuses targets that leave the folder; a symlink in it still can,
                # and the commands have run by now: the step failed (exit 1), not its file.
                raise CommandFailed(
                    prepared.step.document.problem(
                        copy.path,
                        f"output target {copy.target} is outside the output folder "
                        f"{out_root} (it resolves to {target})",
                        "a symlink in the output folder may lead out of it",
                    )
                )
            if not source.exists():
                if self.ctx.dry_run:  # a preview whose commands did not run: not a failure
                    self.log.warning(f"output {copy.source} was not made", step=prepared.step.name)
                    continue
                raise CommandFailed(f"step {prepared.step.name}: output {copy.source} was not made")
            try:
                if source.is_dir():
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    into = copy.target.endswith("/")  # `to: app/`: into that folder
                    folder = target if into else target.parent
                    folder.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, folder / source.name if into else target)
            except (shutil.Error, OSError) as exc:
                raise CommandFailed(
                    f"step {prepared.step.name}: cannot copy output {copy.source} to {target}: "
                    f"{_os_reason(exc)}"
                ) from None
            self.log.info(f"output: {copy.source} → {target}", step=prepared.step.name)


@dataclass(frozen=True)
class _Restored:
    """What a step's restore keeps in memory: not the state, which is in the workdir now."""

    digest: str  # runner.state.base.digest of the state as stored
    sizes: dict[str, int]  # each stored entry's size: most changes show without hashing
    others: dict[str, bytes]  # stored entries no state file holds: saved back as they are
    written: frozenset[str]  # the keys restored into state files


def _unreadable(prepared: PreparedStep, index: int, item: StateFile, exc: OSError) -> Problem:
    return prepared.step.document.problem(
        ("spec", "state", "files", index, "path"),
        f"state file {item.path} was not saved: cannot read it: {_os_reason(exc)}",
    )


def _noted(problems: list[Problem], note: str) -> list[Problem]:
    return [replace(p, hint=f"{p.hint}; {note}" if p.hint else note) for p in problems]


def _reason(command: PreparedCommand, outcome: Outcome) -> str:
    described = command.describe()
    if outcome.error:
        return outcome.error
    if outcome.timed_out:
        return f"{described} timed out"
    if outcome.signalled is not None:
        return f"{described} stopped by {signal.Signals(outcome.signalled).name}"
    if outcome.exit_code is not None and outcome.exit_code < 0:
        return f"{described} was killed by {signal.Signals(-outcome.exit_code).name}"
    return f"{described} exited with {outcome.exit_code}"


def _os_reason(exc: BaseException) -> str:
    """What went wrong with a file operation, in one line (shutil.Error carries a list)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        reasons = {str(entry[-1]) for entry in exc.args[0]}
        return "; ".join(sorted(reasons))[:300]
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)


__all__ = ["Engine", "StoreError"]
