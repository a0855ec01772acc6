"""A run: the steps chosen for this workflow, their secrets, each step prepared before anything
runs and decided at its turn, the step loop, and what each step recorded.

The rules (DESIGN "The run model"):
- Before the first command, every selected step is prepared with what is known then: its
  inputs, secrets, values, `if:` and templates, except what reads the outputs of a step that has
  not run yet. A bad request or a missing secret stops the run here (exit 2): nothing happened.
- At its turn, a step that read such outputs is prepared again from what the steps before it
  recorded, never from placeholders. A step that did not run (skipped by its `if:`, or not
  selected) recorded nothing: its outputs read as null, and its readers run.
- Once a command has run, a problem found preparing a step is that step's failure (exit 1).
- A step's outcome (done, skipped, asked Kratix to retry or to wait) is a value; a held lock or
  a hand-over to Kratix ends the run with exit 0, since Kratix reads workflow-control.yaml only
  once every container exited 0.

`run`, `plan`, `state` and `runner test` all go through a Session; a preview (`plan`, `state`)
takes every step that has recorded nothing as not run yet, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from runner.base.errors import CommandFailed, InvalidError, Problem, RunnerError
from runner.base.source import Document
from runner.engine.outcomes import Outcome, StepOutcome
from runner.engine.selection import select_steps
from runner.platform.kratix import KratixContext, read_request, read_status, read_workflow_control
from runner.platform.log import Logger
from runner.platform.masking import Masker
from runner.platform.settings import DEFAULTS, Settings
from runner.resolve.prepare import PreparedStep, prepare, size_problems
from runner.resolve.secrets import read_secrets
from runner.resolve.step_outputs import StepsSeen, mask_value, recorded_steps, sensitive_names
from runner.state import StoreSpec
from runner.stepfile.model import Step
from runner.stepfile.step_template_library import Template


@dataclass(frozen=True)
class RunResult:
    """What a run did: each step's outcome, in order, and why it ran nothing, if it did not."""

    outcomes: tuple[StepOutcome, ...] = ()
    nothing_ran: str | None = None

    @property
    def stopped_by(self) -> StepOutcome | None:
        """The outcome that handed the workflow to Kratix, if one did."""
        last = self.outcomes[-1] if self.outcomes else None
        return last if last is not None and last.stops_the_run else None


@dataclass
class Session:
    """The selected steps of one run, prepared; `run()` runs them in order."""

    ctx: KratixContext
    log: Logger
    environ: Mapping[str, str]
    store: StoreSpec | None  # --state-store: overrides every step's store
    prepared: list[PreparedStep] = field(default_factory=list)
    request: Document | None = None
    preview: bool = False
    need_secrets: bool = True

    @classmethod
    def open(
        cls,
        steps: Sequence[Step],
        names: Sequence[str],
        ctx: KratixContext,
        environ: Mapping[str, str],
        log: Logger,
        store: StoreSpec | None = None,
        *,
        templates: Sequence[Template] = (),
        need_secrets: bool = True,
        preview: bool = False,
    ) -> Session:
        """Choose the steps, read the request and prepare every step before any runs; every
        problem found, as one InvalidError (exit 2)."""
        session = cls(ctx, log, environ, store, preview=preview, need_secrets=need_secrets)
        chosen = select_steps(list(steps), list(names), ctx, log, templates)
        if not chosen:
            return session
        # Secrets first: a message about a bad request may quote a value that is also a secret.
        for step in chosen:
            _register_secrets(step, environ, log)
        session.request = request = read_request(ctx)
        session.ctx = ctx = ctx.with_request(request.value)
        problems: list[Problem] = []
        for index, step in enumerate(chosen):
            # The steps before it in this run have not run: what reads them waits.
            not_run = None if preview else frozenset(s.name for s in chosen[:index])
            try:
                prepared = session._prepare(step, session._seen(not_run))
            except InvalidError as exc:
                problems += exc.problems
                continue
            session.prepared.append(prepared)
            if not prepared.waiting_for and not prepared.skipped:
                problems += size_problems(prepared, environ)  # E2BIG, known before anything runs
        if problems:
            raise InvalidError(*(_masked(log.masker, p) for p in problems))
        return session

    @property
    def steps(self) -> list[Step]:
        return [p.step for p in self.prepared]

    def run(self, settings: Settings = DEFAULTS) -> RunResult:
        """Run the steps in order, each decided at its turn, until one fails (its error is
        raised), one hands the workflow to Kratix, or all are done."""
        from runner.engine import Engine

        if not self.prepared:
            return RunResult()
        # Before anything runs: what earlier containers of this Pipeline left for Kratix.
        read_status(self.ctx.metadata_dir)
        control = read_workflow_control(self.ctx.metadata_dir)
        if control is not None and control.asks:
            return RunResult(nothing_ran=f"workflow-control.yaml already asks Kratix to "
                             f"{control.describe()}: running nothing")  # fmt: skip
        for what, folder in (("metadata", self.ctx.metadata_dir), ("output", self.ctx.output_dir)):
            try:  # Kratix gives both; a run elsewhere gets them made, or a clear exit 2
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidError(
                    f"cannot create the {what} folder {folder}: {exc.strerror}"
                ) from None
        engine = Engine(self.ctx, self.log, self.environ, self.store, settings)
        engine.install_signal_handlers()
        outcomes: list[StepOutcome] = []
        try:
            for index in range(len(self.prepared)):
                outcome = engine.run_step(self.at_turn(index, outcomes))
                outcomes.append(outcome)
                if outcome.stops_the_run:
                    break
        finally:
            engine.close()
        return RunResult(tuple(outcomes))

    def at_turn(self, index: int, before: Sequence[StepOutcome] = ()) -> PreparedStep:
        """The step at `index`, decided from what the steps `before` it in this run did."""
        skipped = frozenset(o.step for o in before if o.outcome is Outcome.SKIPPED)
        seen = self._seen(frozenset(), forgotten=skipped)
        prepared = self.prepared[index]
        if not prepared.waiting_for:
            return prepared.with_steps(seen)  # only its results may read them: rendered later
        try:
            return self._prepare(prepared.step, seen)
        except InvalidError as exc:
            problems = [_masked(self.log.masker, p) for p in exc.problems]
            ran = any(o.outcome is not Outcome.SKIPPED for o in before)
            # After a command ran, nothing is "invalid before anything ran": the step failed.
            error: type[RunnerError] = CommandFailed if ran else InvalidError
            raise error(*problems) from None

    def _prepare(self, step: Step, seen: StepsSeen) -> PreparedStep:
        assert self.request is not None
        prepared = prepare(
            step, self.ctx, self.request, self.environ, self.store, self.need_secrets, seen
        )
        _register_sensitive_values(prepared, self.log)
        return prepared

    def _seen(
        self, not_run: frozenset[str] | None, forgotten: frozenset[str] = frozenset()
    ) -> StepsSeen:
        """`steps` from what has been recorded; `not_run`: steps whose outputs are not known
        yet (None: all that recorded nothing); `forgotten`: steps skipped in this run, whose
        outputs are null whatever an earlier run left. Recorded sensitive outputs are masked
        from here on."""
        seen = recorded_steps(self.ctx.metadata_dir, not_run)
        if forgotten:
            seen = seen.without(forgotten)
        for value in seen.sensitive_values():
            mask_value(self.log.masker, "a sensitive step output", value)
        return seen


def _register_secrets(step: Step, environ: Mapping[str, str], log: Logger) -> None:
    """Teach the masker the step's secrets that are present (prepare() reports missing ones)."""
    values, _ = read_secrets(step, environ)
    for secret in step.secrets:
        if secret.mask and secret.name in values:
            warning = log.masker.add(secret.name, values[secret.name])
            if warning:
                log.warning(warning, step=step.name)


def _register_sensitive_values(prepared: PreparedStep, log: Logger) -> None:
    """Teach the masker the step's values built from a sensitive output."""
    sensitive = sensitive_names(prepared.step, prepared.context)
    for name, value in prepared.values.items():
        if f"values.{name}" in sensitive:
            mask_value(log.masker, f"value {name}", value)


def _masked(masker: Masker, problem: Problem) -> Problem:
    hint = masker.mask(problem.hint) if problem.hint else None
    return replace(problem, message=masker.mask(problem.message), hint=hint)
