"""What a step does with its state, and which of its commands run, said once: the engine acts
on it and `runner plan` tells it, so the two can't drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runner.platform.kratix import KratixContext
from runner.resolve.prepare import PreparedStep

SaveWhen = Literal["always", "on-success", "never"]


def commands_run(dry_run: bool) -> Literal["run", "dryRun"]:
    """The step field whose commands run: a dry run runs only `dryRun` (none without it)."""
    return "dryRun" if dry_run else "run"


@dataclass(frozen=True)
class StatePolicy:
    """How a step with a state treats it in this run. It is always restored, before the first
    command, also for a step without commands: its outputs and status may read the files."""

    lock: bool  # the lock is held around the restore, the commands and the save
    save: SaveWhen  # after the last command: also after a failure, only if all succeeded, never
    remove: bool  # removed instead of saved once the step succeeded (onDelete: remove)

    @classmethod
    def of(cls, prepared: PreparedStep, ctx: KratixContext) -> StatePolicy | None:
        """The step's policy in this workflow (a preview when ctx.dry_run); None for a step
        without state."""
        if prepared.state_ref is None:
            return None
        state = prepared.step.state
        dry_run = ctx.dry_run
        # A dry run reads the state for its dryRun commands, and never changes or locks it.
        return cls(
            lock=state.lock and not dry_run,
            save="never" if dry_run else "always" if state.save == "always" else "on-success",
            # A step that serves both actions removes its state only in the delete workflow.
            remove=not dry_run and ctx.action == "delete" and state.on_delete == "remove",
        )
