"""What `run`, `plan`, `test` and `state` share: the Kratix options, step selection, preparation."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.environment import Environment
from runner.errors import InvalidError, Problem
from runner.kratix import KratixContext, read_request
from runner.log import Logger
from runner.masking import Masker, set_session_masker
from runner.outputs import (
    OUTPUTS_FOLDER,
    Pending,
    mask_value,
    recorded_steps,
    sensitive_names,
    steps_read,
)
from runner.prepare import PreparedStep, prepare, size_problems
from runner.secrets import read_secrets
from runner.spec.index import needed_files
from runner.spec.loader import StepSet, default_steps_dir, load_steps
from runner.spec.model import WORKFLOW_ACTIONS, WORKFLOW_TYPES, Mismatch, Step
from runner.spec.schema import closest
from runner.spec.source import Document
from runner.spec.template_library import Template, builtin_templates
from runner.state import StoreSpec


def add_kratix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", metavar="DIR", help="the Kratix input folder (default /kratix/input)"
    )
    parser.add_argument(
        "--output", metavar="DIR", help="the Kratix output folder (default /kratix/output)"
    )
    parser.add_argument(
        "--metadata", metavar="DIR", help="the Kratix metadata folder (default /kratix/metadata)"
    )
    parser.add_argument(
        "--state-store",
        metavar="KIND[:WHERE]",
        help="override every step's state store, e.g. local:.runner-state ($RUNNER_STATE_STORE)",
    )


@dataclass
class Session:
    ctx: KratixContext
    steps: list[Step]
    prepared: list[PreparedStep]
    log: Logger
    store: StoreSpec | None  # --state-store: overrides every step's store
    # Steps that read outputs of a step earlier in this run: prepared with placeholders up
    # front (so their inputs and secrets are checked before anything runs), again when due.
    deferred: frozenset[int] = frozenset()
    request: Document | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    def ready(self, index: int) -> PreparedStep:
        """The step at `index`, prepared with what the steps before it have recorded."""
        steps = _steps_context(self.ctx, self.log, [])  # the earlier steps have run
        if index not in self.deferred:
            # Only its results (manifests, status) may read them: they are rendered later.
            prepared = self.prepared[index]
            prepared.context["steps"] = steps
            return prepared
        assert self.request is not None
        try:
            prepared = prepare(
                self.steps[index], self.ctx, self.request, self.environ, self.store, steps=steps
            )
        except InvalidError as exc:
            raise InvalidError(*(_masked(self.log.masker, p) for p in exc.problems)) from None
        _register_sensitive_values(prepared, self.log)
        return prepared


def start_session(
    args: argparse.Namespace,
    names: list[str],
    env: Environment,
    need_secrets: bool = True,
    *,
    preview: bool = False,
) -> Session:
    """Load the steps, read the request, choose the steps and prepare them all before any runs."""
    environ = env.environ
    masker = Masker()
    set_session_masker(masker)  # an internal error's message is masked with it too
    log = Logger(args.log_format, masker, stream=env.stderr, out=env.stdout)
    loaded = load_needed(default_steps_dir(args.steps_dir, environ), names, environ)
    loaded.raise_for_problems()
    ctx = KratixContext.from_environment(environ, args.input, args.output, args.metadata)
    store_option = _state_store_option(args, environ)
    store = StoreSpec.parse(store_option) if store_option else None
    steps = select_steps(loaded.steps, names, ctx, log, loaded.templates)
    if not steps:
        return Session(ctx, [], [], log, store)
    # Secrets first: a message about a bad request may quote a value that is also a secret.
    for step in steps:
        _register_secrets(step, environ, log)
    request = read_request(ctx)
    ctx = ctx.with_request(request.value)
    prepared: list[PreparedStep] = []
    problems: list[Problem] = []
    deferred: set[int] = set()
    for index, step in enumerate(steps):
        earlier = steps[:index]
        try:
            try:
                recorded = _steps_context(ctx, log, earlier, placeholder=preview)
                prepared.append(prepare(step, ctx, request, environ, store, need_secrets, recorded))
            except Pending:
                deferred.add(index)
                recorded = _steps_context(ctx, log, earlier, placeholder=True)
                prepared.append(prepare(step, ctx, request, environ, store, need_secrets, recorded))
        except InvalidError as exc:
            problems += exc.problems
    problems += _unrun_steps([p.step for p in prepared if not p.skipped], ctx)
    for index, ready in enumerate(prepared):  # E2BIG known now: say so before anything runs
        if index not in deferred and not ready.skipped:
            problems += size_problems(ready, environ)
    if problems:
        raise InvalidError(*(_masked(masker, p) for p in problems))
    for one in prepared:
        _register_sensitive_values(one, log)
    return Session(ctx, steps, prepared, log, store, frozenset(deferred), request, environ)


def load_needed(
    folder: Path, names: Sequence[str], environ: Mapping[str, str] | None = None
) -> StepSet:
    """The steps a command wants (those named, else with `environ` those whose `on` matches its
    workflow), loaded from only the files that define them when the stamp's index is fresh
    (runner/spec/index.py); else, or when one of them changed since, from the whole folder."""
    context = None
    if not names and environ is not None:
        try:
            ctx = KratixContext.from_environment(environ)
            context = (ctx.workflow, ctx.action, ctx.promise)
        except InvalidError:
            pass  # reported after the steps' problems, as always: by the full load's caller
    needed = needed_files(folder, names, context)
    if needed is not None:
        loaded = load_steps([folder], trust_stamp=True, files=needed.files)
        if loaded.digests == needed.digests:
            return loaded
    return load_steps([folder], trust_stamp=True)


def _unrun_steps(steps: list[Step], ctx: KratixContext) -> list[Problem]:
    """A step that reads the outputs of a step that neither ran before (no record in the
    metadata folder) nor runs earlier in this run: exit 2 before anything runs."""
    recorded = {path.stem for path in (ctx.metadata_dir / OUTPUTS_FOLDER).glob("*.json")}
    problems = []
    for index, step in enumerate(steps):
        earlier = {s.name for s in steps[:index]}
        for name in sorted(steps_read(step) - recorded - earlier):
            problems.append(
                step.document.problem(
                    ("spec",),
                    f'step {step.name} reads the outputs of step "{name}", which has not run '
                    f"(it recorded nothing in {ctx.metadata_dir / OUTPUTS_FOLDER})",
                    f"run {name} in an earlier container of the Pipeline, or before {step.name} "
                    "in this one",
                )
            )
    return problems


def _steps_context(
    ctx: KratixContext, log: Logger, earlier: list[Step], *, placeholder: bool = False
) -> dict[str, Any]:
    """`steps` for templates: what steps recorded in the metadata folder, the `earlier` steps
    of this run pending; recorded sensitive outputs are masked from here on."""
    steps, sensitive = recorded_steps(
        ctx.metadata_dir, [s.name for s in earlier], placeholder=placeholder
    )
    for value in sensitive:
        mask_value(log.masker, "a sensitive step output", value)
    return steps


def _state_store_option(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """`--state-store`, else `$RUNNER_STATE_STORE` (an empty option means no override)."""
    return environ.get("RUNNER_STATE_STORE") if args.state_store is None else args.state_store


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


def select_steps(
    steps: list[Step],
    names: list[str],
    ctx: KratixContext,
    log: Logger,
    templates: Sequence[Template] = (),
) -> list[Step]:
    """The named steps in the order named, or every step whose `on` matches, in file-name order."""
    check_workflow(ctx)
    if names:
        chosen = named_steps(steps, names, templates)
        for step in chosen:
            why = step.trigger.mismatches(ctx.workflow, ctx.action, ctx.promise)
            if why:
                log.warning(
                    f"step {step.name} is not meant for this workflow ({_joined(why)}); "
                    "running it because it was named",
                    step=step.name,
                )
        return chosen
    chosen = [s for s in steps if s.trigger.matches(ctx.workflow, ctx.action, ctx.promise)]
    if not chosen:
        log.warning(_nothing_matches(steps, ctx))
    return chosen


def named_steps(
    steps: list[Step], names: list[str], templates: Sequence[Template] = ()
) -> list[Step]:
    """The steps named, in the order named; InvalidError with a did-you-mean for unknown ones."""
    by_name = {s.name: s for s in steps}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        templates_by_name = {t.name: t for t in (*builtin_templates(), *templates)}
        raise InvalidError(
            *(
                _template_named(templates_by_name[name], steps)
                if name in templates_by_name
                else _no_step_named(name, sorted(by_name))
                for name in unknown
            )
        )
    return [by_name[n] for n in names]


def _template_named(template: Template, steps: list[Step]) -> Problem:
    users = [s.name for s in steps if template.name in s.templates]
    return Problem(
        f'"{template.name}" is a StepTemplate ({template.where}): a template is never run by itself',
        hint=f"run a step that uses it: {', '.join(users)}" if users else "no step uses it yet",
    )


def _no_step_named(name: str, known: list[str]) -> Problem:
    guess = closest(name, known)
    hint = f'did you mean "{guess}"?' if guess else "steps: " + (", ".join(known) or "none")
    return Problem(f'no step named "{name}"', hint=hint)


def check_workflow(ctx: KratixContext) -> None:
    """KRATIX_WORKFLOW_ACTION and KRATIX_WORKFLOW_TYPE must be values Kratix sets (exit 2)."""
    problems = []
    for variable, value, allowed in (
        ("KRATIX_WORKFLOW_ACTION", ctx.action, WORKFLOW_ACTIONS),
        ("KRATIX_WORKFLOW_TYPE", ctx.workflow, WORKFLOW_TYPES),
    ):
        if value not in allowed:
            guess = closest(value, set(allowed))
            hint = (
                f'did you mean "{guess}"?'
                if guess
                else f"when it is unset, the runner uses {allowed[0]}"
            )
            problems.append(
                Problem(f'{variable} is "{value}": Kratix sets {" or ".join(allowed)}', hint=hint)
            )
    if problems:
        raise InvalidError(*problems)


_REASONS_SHOWN = 10  # steps whose mismatch is explained when nothing matches


def _nothing_matches(steps: list[Step], ctx: KratixContext) -> str:
    """Why `run` without names has nothing to do: each step's `on` and how it differs."""
    text = (
        f"no step matches workflow={ctx.workflow} action={ctx.action} "
        f"promise={ctx.promise or '-'}: nothing to run"
    )
    if not steps:
        return text + " (the steps folder holds no steps)"
    reasons = [
        f"{s.name}: {_joined(s.trigger.mismatches(ctx.workflow, ctx.action, ctx.promise))}"
        for s in steps[:_REASONS_SHOWN]
    ]
    if len(steps) > _REASONS_SHOWN:
        reasons.append(f"... and {len(steps) - _REASONS_SHOWN} more")
    return text + " (" + "; ".join(reasons) + ")"


def _joined(mismatches: list[Mismatch]) -> str:
    return " and ".join(str(m) for m in mismatches)
