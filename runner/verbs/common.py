"""What `run`, `plan` and `state` share: the Kratix options, and the Session they open from
them (runner/engine/session.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.base.errors import InvalidError
from runner.engine.session import Session
from runner.platform.environment import Environment
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger
from runner.platform.masking import Masker, set_session_masker
from runner.state import StoreSpec
from runner.stepfile.index import needed_files
from runner.stepfile.loader import StepSet, default_steps_dir, load_steps


def add_kratix_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", metavar="DIR", help="the Kratix input folder (default /kratix/input)"
    )
    parser.add_argument(
        "--output", metavar="DIR", help="the Kratix output folder (default /kratix/output)"
    )
    parser.add_argument(
        "--metadata", metavar="DIR", help="the Kratix metadata folder (default /kratix/metadata)"
    )
    parser.add_argument(
        "--state-store",
        metavar="KIND[:WHERE]",
        help="override every step's state store, e.g. local:.runner-state ($RUNNER_STATE_STORE)",
    )


def open_session(
    args: argparse.Namespace,
    names: list[str],
    env: Environment,
    need_secrets: bool = True,
    *,
    preview: bool = False,
) -> Session:
    """The run's Session from the command line: the steps loaded, the Kratix context and the
    store override read, and every selected step prepared before any runs."""
    environ = env.environ
    masker = Masker()
    set_session_masker(masker)  # an internal error's message is masked with it too
    log = Logger(args.log_format, masker, stream=env.stderr, out=env.stdout)
    loaded = load_needed(default_steps_dir(args.steps_dir, environ), names, environ)
    loaded.raise_for_problems()
    ctx = KratixContext.from_environment(environ, args.input, args.output, args.metadata)
    store_option = _state_store_option(args, environ)
    store = StoreSpec.parse(store_option) if store_option else None
    return Session.open(
        loaded.steps, names, ctx, environ, log, store,
        templates=loaded.templates, need_secrets=need_secrets, preview=preview,
    )  # fmt: skip


def load_needed(
    folder: Path, names: Sequence[str], environ: Mapping[str, str] | None = None
) -> StepSet:
    """The steps a command wants (those named, else with `environ` those whose `on` matches its
    workflow), loaded from only the files that define them when the stamp's index is fresh
    (runner/stepfile/index.py); else, or when one of them changed since, from the whole folder."""
    context = None
    if not names and environ is not None:
        try:
            ctx = KratixContext.from_environment(environ)
            context = (ctx.workflow, ctx.action, ctx.promise)
        except InvalidError:
            pass  # reported after the steps' problems, as always: by the full load's caller
    needed = needed_files(folder, names, context)
    if needed is not None:
        loaded = load_steps([folder], trust_stamp=True, files=needed.files)
        if loaded.digests == needed.digests:
            return loaded
    return load_steps([folder], trust_stamp=True)


def _state_store_option(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """`--state-store`, else `$RUNNER_STATE_STORE` (an empty option means no override)."""
    return environ.get("RUNNER_STATE_STORE") if args.state_store is None else args.state_store
