"""A step's commands, in order: the step's timeout, continueOnError, and why a command failed."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from runner.execute import Executor, Outcome
from runner.log import Logger, seconds
from runner.prepare import PreparedCommand, PreparedStep


class CommandLoop:
    """Runs a prepared step's commands through one executor (which receives the signals)."""

    def __init__(self, executor: Executor, log: Logger, environ: dict[str, str]) -> None:
        self.executor = executor
        self.log = log
        self.environ = environ

    def run_commands(
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
            outcome = self.run_one(command, workdir, {**env, **command.env}, timeout, fields, index)
            if outcome.ok:
                continue
            why = reason(command, outcome)
            if outcome.signalled is not None:
                return why
            if command.continue_on_error:
                self.log.warning(f"{why}; continuing (continueOnError)", **fields)
                continue
            return why
        return None

    def run_one(
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
                f"✖ {reason(command, outcome)} ({seconds(outcome.duration)})",
                event="command-end",
                exit_code=outcome.exit_code,
                duration=round(outcome.duration, 3),
                index=index,
                **fields,
            )
        return outcome


def reason(command: PreparedCommand, outcome: Outcome) -> str:
    """Why a command failed, in words that name it."""
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
