"""Running prepared steps: the order of the phases of a step, and the signals that stop it.

The order (DESIGN "Order inside a step"): inputs, values and `if` (prepared before anything
runs), lock and restore, commands, save, outputs, then manifests, destinations and status, then
waitFor/suspend. Each phase lives in its own module: the workspace (workspace.py), the state's
restore and save (state.py), the commands (commands.py), manifests and destinations
(manifests.py), and what else the step leaves for Kratix (results.py).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

from runner.base.errors import CommandFailed, LockHeld, StoreError
from runner.engine.commands import CommandLoop
from runner.engine.manifests import write_destinations, write_manifests
from runner.engine.outcomes import Outcome, StepOutcome
from runner.engine.policy import StatePolicy, commands_run
from runner.engine.results import Results
from runner.engine.state import StatePhase
from runner.engine.workspace import workspace
from runner.platform import interrupts
from runner.platform.execute import Executor
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger, seconds
from runner.platform.settings import DEFAULTS, Settings
from runner.resolve.prepare import PreparedStep, with_secrets
from runner.resolve.step_outputs import collect as collect_outputs
from runner.resolve.step_outputs import record as record_outputs
from runner.state import StoreSpec, open_store
from runner.state.base import StateStore
from runner.state.encryption import EncryptedStore


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
        self.commands = CommandLoop(self.executor, log, self.environ)
        self.state = StatePhase(log)
        self.results = Results(ctx, log)
        self._stores: dict[str, StateStore] = {}

    # -- signals -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record it (logging here could re-enter a write to stderr; raising could land
        # between taking a lock and the `try` that releases it). A lock wait or a restore
        # stops at its next safe point (runner/platform/interrupts.py); while commands run or state is
        # saved, the executor forwards the signal and the step stops after saving.
        interrupts.record(signum)
        self.executor.interrupt(signum)

    # -- stores --------------------------------------------------------------------------
    def store(self, kind: str) -> StateStore:
        if kind not in self._stores:
            override = self.store_override
            location = override.location_for(kind) if override else None
            self._stores[kind] = open_store(kind, location, self.environ)
        return self._stores[kind]

    def close(self) -> None:
        try:
            for store in self._stores.values():
                store.close()
        finally:
            self.executor.close()

    # -- a step ----------------------------------------------------------------------------
    def run_step(self, prepared: PreparedStep) -> StepOutcome:
        """Run one step, ready to run (`waiting_for` nothing); what became of it. Raises
        CommandFailed, StoreError, Interrupted or InvalidError."""
        step = prepared.step
        assert not prepared.waiting_for, "prepared before the steps it reads ran"
        fields = {"step": step.name}
        if prepared.skipped:
            self.log.info(
                f"step {step.name} skipped: {prepared.skipped}", event="step-skip", **fields
            )
            return StepOutcome(step.name, Outcome.SKIPPED, prepared.skipped)
        started = time.monotonic()
        began = time.time()  # what a dry run's outputs read was written after this
        mode = " (dry run)" if self.ctx.dry_run else ""
        self.log.info(f"step {step.name} started{mode}", event="step-start", **fields)
        ref = prepared.state_ref
        store = self.store(prepared.store) if ref else None
        if store is not None and prepared.keys is not None:
            store = EncryptedStore(store, prepared.keys)
        policy = StatePolicy.of(prepared, self.ctx)
        with workspace(prepared, self.environ.get("TMPDIR")) as workdir:
            lock: Any = nullcontext()
            if store is not None and ref is not None and policy is not None and policy.lock:
                lock = store.lock(ref, self.lock_wait, self.log)
            try:
                interrupts.stop_if_received()
                if self.ctx.dry_run and not prepared.commands:
                    field = commands_run(self.ctx.dry_run)
                    self.log.info(f"dry run: the step has no {field} commands; none run", **fields)
                with lock as held:
                    # Until the commands start there is nothing to save: a signal that came
                    # while taking the lock or restoring ends the step (releasing the lock).
                    interrupts.stop_if_received()
                    stored, expected, generated = self.state.restore(
                        prepared, policy, store, workdir
                    )
                    prepared = with_secrets(prepared, generated)
                    interrupts.stop_if_received()
                    failure = self.commands.run_commands(prepared, workdir, fields)
                    self.state.finish(
                        prepared, policy, store, workdir, stored, failure, expected, held
                    )
            except LockHeld as exc:
                self.results.ask_to_retry(step.name, exc)
                return StepOutcome(step.name, Outcome.RETRY_LATER, exc.problems[0].message)
            if self.executor.interrupted is not None:
                signame = signal.Signals(self.executor.interrupted).name
                self.log.warning(f"received {signame}: step stopped", **fields)
            interrupts.stop_if_received()
            if failure:
                self._step_end(step.name, started, "failed")
                raise CommandFailed(f"step {step.name}: {failure}")
            try:
                context = self._results(prepared, workdir, began)
            except CommandFailed:
                self._step_end(step.name, started, "failed")
                raise
        self._step_end(step.name, started, "succeeded")
        asked = self.results.hand_to_kratix(prepared, context)
        if asked is not None:
            return StepOutcome(step.name, Outcome.HANDED_TO_KRATIX, asked)
        return StepOutcome(step.name, Outcome.DONE)

    def _results(self, prepared: PreparedStep, workdir: Path, began: float) -> dict[str, Any]:
        """Outputs, then what the step writes; the context its results were rendered in. A
        dry run writes output and status too (Kratix diffs them against the live request's);
        status last, so that it never reports a step whose output failed."""
        step = prepared.step
        outputs = collect_outputs(
            step, workdir, prepared.context, self.log, self.ctx.dry_run, since=began
        )
        context = {**prepared.context, "outputs": outputs}
        write_manifests(step, context, self.ctx, self.log, workdir)
        write_destinations(step, context, self.ctx, self.log)
        self.results.copy_output(prepared, workdir, context)
        self.results.write_status(prepared, workdir, context)
        if step.outputs:  # last: later steps never read the outputs of a step that failed
            path = record_outputs(self.ctx.metadata_dir, step, outputs, context)
            self.log.info(f"outputs: {', '.join(outputs)} → {path}", step=step.name)
        return context

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


__all__ = ["Engine", "Outcome", "StepOutcome", "StoreError"]
