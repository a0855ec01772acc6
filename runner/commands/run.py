"""`runner run [STEP...]`: run steps as a Kratix pipeline container does."""

from __future__ import annotations

import argparse

from runner.commands.common import add_kratix_arguments, start_session
from runner.environment import Environment
from runner.errors import ExitCode, HandedToKratix, InvalidError, LockHeld, RunnerError
from runner.kratix import read_status, read_workflow_control
from runner.settings import LOCK_WAIT, argument_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="STEP", help="steps to run (default: those whose `on` matches)"
    )
    add_kratix_arguments(parser)
    parser.add_argument(
        "--lock-wait",
        type=argument_type(LOCK_WAIT),
        metavar="DURATION",
        help="how long to wait for another run's lock before asking Kratix to retry, e.g. 90s "
        "or 2m (default: $RUNNER_LOCK_WAIT, else 60s)",
    )


def main(args: argparse.Namespace, env: Environment) -> int:
    from runner.engine import Engine

    session = start_session(args, args.names, env)
    if not session.prepared:
        return int(ExitCode.OK)
    ctx, log = session.ctx, session.log
    # Before anything runs: what earlier containers of this Pipeline left for Kratix.
    read_status(ctx.metadata_dir)
    control = read_workflow_control(ctx.metadata_dir)
    if control is not None and control.asks:
        log.info(
            f"workflow-control.yaml already asks Kratix to {control.describe()}: running nothing"
        )
        return int(ExitCode.OK)
    try:
        ctx.metadata_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidError(
            f"cannot create the metadata folder {ctx.metadata_dir}: {exc.strerror}"
        ) from None
    engine = Engine(ctx, log, env.environ, session.store, args.settings)
    engine.install_signal_handlers()
    try:
        for index in range(len(session.prepared)):
            engine.run_step(session.ready(index))
    except LockHeld:
        # Kratix reads workflow-control.yaml only once every container exited 0.
        log.info("another run holds the state: no further step runs; Kratix retries the workflow")
        return int(ExitCode.OK)
    except HandedToKratix as exc:
        log.info(f"{exc.problems[0].message}: no further step runs")
        return int(ExitCode.OK)
    except RunnerError as exc:
        # Messages may quote command output or values: mask them like everything else.
        for problem in exc.problems:
            log.error(problem.format())
        return int(exc.exit_code)
    finally:
        engine.close()
    return int(ExitCode.OK)
