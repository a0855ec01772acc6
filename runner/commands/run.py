"""`runner run [STEP...]`: run steps as a Kratix pipeline container does."""

from __future__ import annotations

import argparse
import os

from runner.commands.common import add_kratix_arguments, start_session
from runner.errors import ExitCode, RunnerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="STEP", help="steps to run (default: those whose `on` matches)"
    )
    add_kratix_arguments(parser)
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=float(os.environ.get("RUNNER_LOCK_WAIT", "60")),
        metavar="SECONDS",
        help="how long to wait for another run's lock before asking Kratix to retry (default 60)",
    )


def main(args: argparse.Namespace) -> int:
    from runner.engine import Engine

    session = start_session(args, args.names, os.environ)
    if session.ctx.dry_run and not any(p.step.dry_run for p in session.prepared):
        from runner.commands.plan import print_plan

        session.log.info("KRATIX_DRY_RUN=true: printing the plan, running nothing")
        print_plan(session)
        return int(ExitCode.OK)
    engine = Engine(session.ctx, session.log, os.environ, args.state_store, args.lock_wait)
    engine.install_signal_handlers()
    try:
        for prepared in session.prepared:
            if session.ctx.dry_run and not prepared.step.dry_run:
                session.log.info(
                    "dry run: the step has no dryRun commands; skipped", step=prepared.step.name
                )
                continue
            engine.run_step(prepared)
    except RunnerError as exc:
        # Messages may quote command output or values: mask them like everything else.
        for problem in exc.problems:
            session.log.error(problem.format())
        return int(exc.exit_code)
    finally:
        engine.close()
    return int(ExitCode.OK)
