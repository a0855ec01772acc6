"""Which steps a run takes: those named, in the order named, or every step whose `on` matches
the workflow, in file-name order; and what is said when a name or the workflow is wrong."""

from __future__ import annotations

from collections.abc import Sequence

from runner.base.errors import InvalidError, Problem
from runner.base.words import closest
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger
from runner.stepfile.model import WORKFLOW_ACTIONS, WORKFLOW_TYPES, Mismatch, Step
from runner.stepfile.step_template_library import Template, builtin_templates


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
                    "taking it because it was named",
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
