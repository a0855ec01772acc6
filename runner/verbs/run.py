"""`runner run [STEP...]`: run steps as a Kratix pipeline container does."""

from __future__ import annotations

import argparse

from runner.base.errors import ExitCode
from runner.platform.environment import Environment
from runner.platform.settings import LOCK_WAIT, argument_type
from runner.verbs.common import add_kratix_arguments, open_session


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
    session = open_session(args, args.names, env)
    result = session.run(args.settings)
    if result.nothing_ran:
        session.log.info(result.nothing_ran)
    elif (stopped := result.stopped_by) is not None:
        # Kratix reads workflow-control.yaml only once every container exited 0.
        session.log.info(f"{stopped.message}: no further step runs; Kratix takes it from here")
    return int(ExitCode.OK)
