"""What `runner plan` shows of a step's results: its manifests and destinations as the engine's
own builders make them (nothing written), and what it would ask of Kratix in
workflow-control.yaml.

Outputs exist only once the commands ran, so the plan shows each `${{ outputs.X }}` as a
placeholder, and a condition that reads an output as decided after the commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.base.errors import RunnerError
from runner.engine.manifest_sources import planned_documents
from runner.engine.manifests import build_entry, destination_selectors
from runner.language.expressions import ExpressionError, compile_expression
from runner.language.render import RenderError, render_data
from runner.platform.kratix import KratixContext
from runner.platform.masking import Masker
from runner.platform.settings import format_duration
from runner.resolve.prepare import PreparedStep
from runner.resolve.step_outputs import Pending
from runner.resolve.values import holds
from runner.stepfile.model import Manifest, Output, Retry, Step

LATER = "decided after the commands (it reads outputs)"
ITEMS_LATER = "known after the commands (its forEach reads outputs)"


def not_run_yet(step: str) -> str:
    """What the plan says of something that reads the outputs of a step not run yet."""
    return f"decided when the step runs: it reads the outputs of {step}, not run yet"


def after_commands(prepared: PreparedStep) -> dict[str, Any]:
    """The step's context as its results will see it, outputs shown as placeholders."""
    placeholders = {
        o.name: f"(outputs.{o.name}, after the commands)" for o in prepared.step.outputs
    }
    return {**prepared.context, "outputs": placeholders}


def shown(value: Any, context: Mapping[str, Any]) -> Any:
    """A templated value as it will be written, or as written when it can't be rendered yet."""
    try:
        return render_data(value, context)
    except (RenderError, Pending):
        return value


def outputs(step: Step) -> dict[str, str]:
    return {o.name: _source(o) for o in step.outputs}


def retry(policy: Retry) -> dict[str, Any]:
    return {
        "attempts": policy.attempts,
        "delay": format_duration(policy.delay),
        "backoff": policy.backoff,
        **({"maxDelay": format_duration(policy.max_delay)} if policy.max_delay else {}),
        **({"onExitCodes": list(policy.on_exit_codes)} if policy.on_exit_codes else {}),
    }


def results(prepared: PreparedStep, ctx: KratixContext, masker: Masker) -> dict[str, Any]:
    step = prepared.step
    context = after_commands(prepared)
    plan: dict[str, Any] = {}
    if step.manifests:
        plan["manifests"] = [_manifest(step, m, context, ctx, masker) for m in step.manifests]
    if step.destinations:
        plan["destinations"] = _destinations(step, context, ctx, masker)
    control = _workflow_control(step, context)
    if control:
        plan["workflowControl"] = control
    return plan


def _source(output: Output) -> str:
    sensitive = " (sensitive)" if output.sensitive else ""
    if output.file is None:
        return f"expression {output.expression}{sensitive}"
    query = f" {output.expression}" if output.expression else " (its text)"
    return f"from {output.file}{query}{sensitive}"


def decided(step: Step, condition: str, context: Mapping[str, Any], path: Any) -> bool | str:
    try:
        if any(name.path[0] == "outputs" for name in compile_expression(condition).names()):
            return LATER
        return holds(step, condition, context, path)
    except Pending as exc:
        return not_run_yet(exc.step)
    except (ExpressionError, RunnerError):
        return "cannot be evaluated for this request"


def _manifest(
    step: Step, manifest: Manifest, context: Mapping[str, Any], ctx: KratixContext, masker: Masker
) -> dict[str, Any]:
    """One entry as the engine's builder makes it (engine/manifests.py), nothing written."""
    entry: dict[str, Any] = {"path": manifest.target}
    if manifest.for_each:
        entry["forEach"] = manifest.for_each
    if manifest.condition:
        entry["if"] = manifest.condition
    if manifest.for_each and _reads_outputs(manifest.for_each):
        entry["files"] = ITEMS_LATER
        return entry
    try:
        built = build_entry(
            step, manifest, context, ctx.output_dir, masker,
            source=lambda m, names: planned_documents(step, m, names), decide=decided,
        )  # fmt: skip
    except Pending as exc:
        entry["documents"] = not_run_yet(exc.step)
        return entry
    except RunnerError as exc:
        entry["error"] = exc.problems[0].format()
        return entry
    if manifest.for_each is None:
        if not built.files:
            entry["written"] = False
            return entry
        [file] = built.files
        if manifest.condition:
            entry["written"] = file.written
        entry["path"] = str(file.target)
        entry["documents"] = file.shown()
        return entry
    entry["items"] = built.items
    if built.skipped:
        entry["skippedItems"] = built.skipped
    entry["files"] = [
        {
            "path": str(f.target),
            "items": f.items,
            **({"written": f.written} if f.written is not True else {}),
            "documents": f.shown(),
        }
        for f in built.files
    ]
    return entry


def _destinations(
    step: Step, context: Mapping[str, Any], ctx: KratixContext, masker: Masker
) -> Any:
    """The step's selectors as the engine's builder makes them, nothing written."""
    try:
        return destination_selectors(step, context, ctx.metadata_dir, masker)[2]
    except Pending as exc:
        return not_run_yet(exc.step)
    except RunnerError as exc:
        return {"error": exc.problems[0].format()}


def _reads_outputs(expression: str) -> bool:
    try:
        compiled = compile_expression(expression)
    except ExpressionError:
        return False  # the builder reports it
    return compiled.reads_whole or any(n.path[0] == "outputs" for n in compiled.names())


def _workflow_control(step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
    if step.wait_for is not None:
        wait = step.wait_for
        met = decided(step, wait.condition, context, ("spec", "waitFor", "condition"))
        return {
            "waitFor": wait.condition,
            "met": met,
            "otherwise": {
                "retryAfter": format_duration(wait.retry_after),
                **({"message": shown(wait.message, context)} if wait.message else {}),
            },
        }
    if step.suspend is not None:
        suspend = step.suspend
        applies = (
            True
            if suspend.condition is None
            else decided(step, suspend.condition, context, ("spec", "suspend", "if"))
        )
        return {
            "suspend": applies,
            **({"if": suspend.condition} if suspend.condition else {}),
            **({"message": shown(suspend.message, context)} if suspend.message else {}),
        }
    return {}
