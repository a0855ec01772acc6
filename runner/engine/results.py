"""What a step leaves for Kratix: status.yaml, the output folder, and workflow-control.yaml
when another run holds the state's lock, a `waitFor` is not met yet or a `suspend` applies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.base.errors import (
    CommandFailed,
    InvalidError,
    LockHeld,
    Problem,
    StoreError,
)
from runner.base.source import PathKey
from runner.engine.confined import NotMade, Refused, copy_below
from runner.engine.fileerrors import os_reason
from runner.engine.manifest_sources import NotPicked, output_applies, output_source
from runner.language.interpolation import TemplateError, render
from runner.language.query import QueryError
from runner.language.render import RenderError, render_data
from runner.platform.kratix import (
    KratixContext,
    WorkflowControl,
    request_workflow_control,
    status_problems,
    write_status,
)
from runner.platform.log import Logger
from runner.platform.settings import format_duration
from runner.resolve.prepare import PreparedStep
from runner.resolve.step_outputs import FileValueError, query_file
from runner.resolve.values import holds
from runner.stepfile.model import OutputCopy, StatusFromFile


class Results:
    """Writes a step's results into the pipeline's folders (`ctx`)."""

    def __init__(self, ctx: KratixContext, log: Logger) -> None:
        self.ctx = ctx
        self.log = log

    def ask_to_retry(self, step: str, held: LockHeld) -> None:
        """Another run holds the lock: ask Kratix, in workflow-control.yaml, to retry later."""
        retry = format_duration(held.retry_after_seconds)
        reason = self.log.masker.mask(held.problems[0].message)
        wanted = WorkflowControl(retry_after=retry, message=f"step {step}: {reason}")
        self._request(step, wanted, reason)

    def _request(self, step: str, wanted: WorkflowControl, reason: str) -> None:
        """Write workflow-control.yaml, unless another container already asked for something."""
        try:
            now = request_workflow_control(self.ctx.metadata_dir, wanted)
        except OSError as exc:
            # Exiting 0 without the file would let Kratix mark the workflow done: fail instead.
            raise StoreError(
                f"step {step}: {reason}; and cannot ask Kratix to "
                f"{'suspend' if wanted.suspend else 'retry'}: "
                f"cannot write workflow-control.yaml: {os_reason(exc)}"
            ) from None
        if now is wanted:
            what = "suspend" if wanted.suspend else f"retry in {wanted.retry_after}"
            self.log.info(f"{reason}: asked Kratix to {what} (workflow-control.yaml)", step=step)
        else:
            self.log.info(
                f"workflow-control.yaml already asks Kratix to {now.describe()}", step=step
            )

    def hand_to_kratix(self, prepared: PreparedStep, context: Mapping[str, Any]) -> str | None:
        """Ask Kratix to retry (an unmet `waitFor`) or to suspend (`suspend`), and say what
        was asked; None when the step asks nothing."""
        step = prepared.step
        wait, suspend = step.wait_for, step.suspend
        if wait is not None and not holds(
            step, wait.condition, context, ("spec", "waitFor", "condition"), CommandFailed
        ):
            message = self._message(prepared, wait.message, ("spec", "waitFor", "message"), context)
            wanted = WorkflowControl(
                retry_after=format_duration(wait.retry_after),
                message=message or f"step {step.name}: waiting until {wait.condition}",
            )
        elif suspend is not None and (
            suspend.condition is None
            or holds(step, suspend.condition, context, ("spec", "suspend", "if"), CommandFailed)
        ):
            message = self._message(
                prepared, suspend.message, ("spec", "suspend", "message"), context
            )
            wanted = WorkflowControl(suspend=True, message=message or f"step {step.name} suspends")
        else:
            return None
        self._request(step.name, wanted, wanted.message)
        return f"step {step.name}: asked Kratix to {wanted.describe()}"

    def _message(
        self, prepared: PreparedStep, text: str | None, path: PathKey, context: Mapping[str, Any]
    ) -> str:
        if not text:
            return ""
        try:
            return self.log.masker.mask(render(text, context))
        except TemplateError as exc:
            raise CommandFailed(prepared.step.document.problem(path, exc.message)) from None

    def write_status(
        self, prepared: PreparedStep, workdir: Path, context: Mapping[str, Any]
    ) -> None:
        step = prepared.step
        values: dict[str, Any] = {}
        for key, value in step.status.items():
            if isinstance(value, StatusFromFile):
                found = self.status_from_file(prepared, workdir, key, value)
                if found is not None:
                    values[key] = found
                continue
            try:
                values[key] = render_data(value, context)  # `${{ x }}` alone keeps x's type
            except RenderError as exc:
                where = ("spec", "status", key, *exc.path)
                raise CommandFailed(step.document.problem(where, exc.message)) from None
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
                f"cannot write status.yaml in {self.ctx.metadata_dir}: {os_reason(exc)}"
            ) from None
        self.log.info(f"status: {', '.join(values)} → {path}", step=step.name)

    def status_from_file(
        self, prepared: PreparedStep, workdir: Path, key: str, value: StatusFromFile
    ) -> Any:
        step = prepared.step
        try:
            found = query_file(workdir / value.file, value.file, value.expression, value.language)
        except (FileValueError, QueryError) as exc:
            found, why = None, exc.message if isinstance(exc, QueryError) else str(exc)
        else:
            why = f"{value.expression} found nothing in {value.file}"
        if found is None:
            if value.required and not self.ctx.dry_run:
                raise CommandFailed(step.document.problem(("spec", "status", key), why))
            self.log.warning(f"status {key}: {why}", step=step.name)
        return found

    def copy_output(
        self, prepared: PreparedStep, workdir: Path, context: Mapping[str, Any] | None = None
    ) -> None:
        if prepared.step.output and self.ctx.action == "delete":
            # A delete Pipeline has no work-writer container: nothing reads /kratix/output.
            self.log.warning(
                "output: Kratix ignores the output of a delete workflow", step=prepared.step.name
            )
        out_root = self.ctx.output_dir
        context = prepared.context if context is None else context
        for copy in prepared.step.output:
            if not output_applies(prepared.step, copy, context):
                self.log.info(
                    f"output {copy.source}: skipped (if: {copy.condition})", step=prepared.step.name
                )
                continue
            try:
                source, target = output_source(prepared.step, copy, context, self.ctx.dry_run)
            except NotPicked:
                self.log.warning(
                    f"output {copy.source}: no file picked in a dry run (it reads outputs)",
                    step=prepared.step.name,
                )
                continue
            try:
                written = copy_below(workdir, source, out_root, target)
            except Refused as exc:
                raise CommandFailed(self._refused(prepared, copy, exc)) from None
            except ValueError:
                # `validate` refuses targets that leave the folder with `..`.
                raise CommandFailed(
                    prepared.step.document.problem(
                        copy.path, f"output target {target} is outside the output folder"
                    )
                ) from None
            except NotMade:
                if self.ctx.dry_run:  # a preview whose commands did not run: not a failure
                    self.log.warning(f"output {source} was not made", step=prepared.step.name)
                    continue
                raise CommandFailed(
                    f"step {prepared.step.name}: output {source} was not made"
                ) from None
            except OSError as exc:
                raise CommandFailed(self._cannot_copy(prepared, copy, exc)) from None
            self.log.info(f"output: {source} → {written}", step=prepared.step.name)

    def _refused(self, prepared: PreparedStep, copy: OutputCopy, exc: Refused) -> Problem:
        """A link where the copy reads or writes: located at its `from`, or its `to`."""
        document = prepared.step.document
        if exc.side == "source":
            return document.problem(
                (*copy.path[:-1], "from"),
                f"output {copy.source}: {exc}",
                "output copies no symbolic links: copy the file it points to in a command "
                "(cp -L), or name the file itself in from:",
            )
        return document.problem(
            copy.path,
            f"output target {copy.target}: {exc}; nothing is written through a symbolic link "
            f"in the output folder {self.ctx.output_dir}",
            "remove the link, or copy the output to another path",
        )

    def _cannot_copy(self, prepared: PreparedStep, copy: OutputCopy, exc: OSError) -> str:
        return (
            f"step {prepared.step.name}: cannot copy output {copy.source} to "
            f"{self.ctx.output_dir / copy.target}: {os_reason(exc)}"
        )
