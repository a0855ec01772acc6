"""What `runner plan` shows of a step's results: its manifests rendered, its destinations, and
what it would ask of Kratix in workflow-control.yaml.

Outputs exist only once the commands ran, so the plan shows each `${{ outputs.X }}` as a
placeholder, and a condition that reads an output as decided after the commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.base.errors import InvalidError, RunnerError
from runner.engine.manifest_sources import planned_documents
from runner.language.documents import ManifestError, output_path
from runner.language.expressions import ExpressionError, compile_expression
from runner.language.interpolation import TemplateError, render
from runner.language.render import RenderError, render_data
from runner.platform.kratix import KratixContext
from runner.platform.settings import format_duration
from runner.resolve.prepare import PreparedStep
from runner.resolve.step_outputs import Pending
from runner.resolve.values import holds
from runner.stepfile.model import Output, Retry, Step

LATER = "decided after the commands (it reads outputs)"


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


def results(prepared: PreparedStep, ctx: KratixContext) -> dict[str, Any]:
    step = prepared.step
    context = after_commands(prepared)
    plan: dict[str, Any] = {}
    if step.manifests:
        plan["manifests"] = [_manifest(step, m, context, ctx) for m in step.manifests]
    if step.destinations:
        plan["destinations"] = [
            {
                **({"directory": shown(d.directory, context)} if d.directory else {}),
                "matchLabels": shown(d.match_labels, context),
            }
            for d in step.destinations
        ]
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


def _manifest(step: Step, manifest: Any, context: Mapping[str, Any], ctx: KratixContext) -> Any:
    entry: dict[str, Any] = {"path": shown(manifest.target, context)}
    if manifest.condition:
        entry["if"] = manifest.condition
        entry["written"] = decided(step, manifest.condition, context, (*manifest.path, "if"))
        if entry["written"] is False:
            return entry
    try:
        entry["path"] = str(output_path(ctx.output_dir, render(manifest.target, context)))
        entry["documents"] = planned_documents(step, manifest, context)
    except Pending as exc:
        entry["documents"] = not_run_yet(exc.step)
    except (ManifestError, RenderError, TemplateError) as exc:
        entry["error"] = exc.message
    except InvalidError as exc:
        entry["error"] = exc.problems[0].format()
    return entry


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
