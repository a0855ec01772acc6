"""A step's commands, in order: their `if:`, retries, the step's timeout, continueOnError, and
why a command failed."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from runner.base.errors import Interrupted
from runner.platform import interrupts
from runner.platform.execute import Executor, Outcome
from runner.platform.log import Logger, seconds
from runner.resolve.inputs import left_out_message
from runner.resolve.prepare import PreparedCommand, PreparedStep, command_env
from runner.stepfile.model import Retry


class _StepTimedOut(Exception):
    """The step's timeout ran out before a command (or its next try) could start."""


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
        if prepared.unexported and prepared.commands:
            self.log.warning(left_out_message(prepared.unexported), **fields)
        deadline = time.monotonic() + step.timeout if step.timeout else None
        for index, command in enumerate(prepared.commands):
            if self.executor.interrupted is not None:
                return "interrupted"
            if command.skipped:
                self.log.info(f"skipped {command.describe()}: {command.skipped}", **fields)
                continue
            try:
                env = command_env(self.environ, prepared, command)
                outcome = self._tries(command, workdir, env, deadline, fields, index)
            except _StepTimedOut:
                return "step timed out"
            except Interrupted:
                return "interrupted"
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

    def _tries(
        self,
        command: PreparedCommand,
        workdir: Path,
        env: dict[str, str],
        deadline: float | None,
        fields: dict[str, Any],
        index: int,
    ) -> Outcome:
        """Run a command, and again while its `retry:` allows: never after a timeout or a
        signal, and only for the exit codes it names."""
        retry = command.source.retry or Retry()
        attempt = 1
        while True:
            timeout = command.timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _StepTimedOut
                timeout = min(timeout, left) if timeout else left
            outcome = self.run_one(command, workdir, env, timeout, fields, index)
            code = outcome.exit_code
            if (
                outcome.ok
                or attempt >= retry.attempts
                or outcome.timed_out
                or outcome.signalled is not None
                or code is None
                or code < 0
                or not retry.retries(code)
            ):
                return outcome
            attempt += 1
            wait = retry.wait_before(attempt)
            self.log.warning(
                f"retrying {command.describe()} in {seconds(wait)} (try {attempt} of "
                f"{retry.attempts})",
                event="command-retry",
                attempt=attempt,
                **fields,
            )
            interrupts.pause(wait)

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
        if not command.echo:
            where = f"only to {command.stdout}" if command.stdout else "nowhere"
            why = "a sensitive output reads it" if command.source.echo else "echo: false"
            self.log.info(f"  its stdout goes {where}, not to the log ({why})", **fields)
        stdin = None if command.stdin is None else command.stdin.encode("utf-8", "surrogateescape")
        outcome = self.executor.run(
            command.argv, cwd, env, timeout, stdout, fields, stdin=stdin, echo=command.echo
        )
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
            # A command allowed to fail (a look-up that finds nothing) is not an error.
            said = self.log.warning if command.continue_on_error else self.log.error
            said(
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
