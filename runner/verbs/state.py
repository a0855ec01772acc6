"""`runner state show|rm|unlock STEP`: inspect or repair a step's stored state, with the same
request context as `run` (input object, namespace, state store override)."""

from __future__ import annotations

import argparse

from runner.base.errors import InvalidError, LockHeld, Problem, StoreError
from runner.platform.environment import Environment
from runner.platform.masking import session_masker
from runner.state import open_store
from runner.state.base import StateRef, StateStore
from runner.state.encryption import EncryptedStore, is_sealed
from runner.stepfile.model import GENERATED_PREFIX
from runner.verbs.common import add_kratix_arguments, open_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["show", "rm", "unlock"],
        help="show the state, remove it, or break its lock",
    )
    parser.add_argument("step", metavar="STEP")
    parser.add_argument(
        "--key", help="show: print only this file's content (secrets set in the environment masked)"
    )
    parser.add_argument(
        "--raw", action="store_true", help="show --key: the file's exact bytes, nothing masked"
    )
    parser.add_argument(
        "--force", action="store_true", help="rm: remove the state even while a run holds its lock"
    )
    add_kratix_arguments(parser)


def main(args: argparse.Namespace, env: Environment) -> int:
    # Secrets aren't needed to find a state: don't make operators provide them.
    session = open_session(args, [args.step], env, need_secrets=False, preview=True)
    prepared = session.prepared[0]
    ref = prepared.state_ref
    if ref is None and prepared.waiting_for and prepared.step.keeps_state:
        steps = ", ".join(sorted(prepared.waiting_for))
        raise InvalidError(
            Problem(
                f"the state of step {args.step} is named from the outputs of {steps}, which "
                f"have recorded none in {session.ctx.metadata_dir}",
                hint="give --metadata the folder where they recorded them (runner/outputs)",
            )
        )
    if ref is None:
        raise InvalidError(f"step {args.step} keeps no state")
    location = session.store.location_for(prepared.store) if session.store else None
    store = open_store(prepared.store, location, env.environ)
    if args.action == "show":
        for problem in prepared.key_problems:
            print(f"runner: warning: {problem.format()}", file=env.stderr)
        if prepared.keys is not None:
            store = EncryptedStore(store, prepared.keys)
    try:
        where = store.describe(ref)
        if args.action == "show":
            loaded = store.load(ref)
            if loaded is None:
                print(f"no state in {where}", file=env.stderr)
                return 1
            files = loaded.files
            if is_sealed(files):  # the step's encryption is set, none of its keys is
                raise StoreError(
                    f"state {where} is encrypted, and none of the step's state keys is set: "
                    "set them (state.encryption) to read it"
                )
            if args.key:
                if args.key.startswith(GENERATED_PREFIX) and args.key in files:
                    raise InvalidError(
                        Problem(
                            f'key "{args.key}" of {where} is a generated secret: never shown',
                            hint="the step's commands get it as an environment variable",
                        )
                    )
                if args.key not in files:
                    raise InvalidError(
                        f'no key "{args.key}" in {where}; keys: {", ".join(sorted(files))}'
                    )
                data = files[args.key]
                if not args.raw:
                    masker = session_masker()
                    for key, value in files.items():  # what the state kept is a secret too
                        if key.startswith(GENERATED_PREFIX) and value.strip():
                            masker.add(key, value.decode("utf-8", "replace").removesuffix("\n"))
                    text = masker.mask(data.decode("utf-8", "surrogateescape"))
                    data = text.encode("utf-8", "surrogateescape")
                env.write_bytes(data)
                return 0
            print(f"{where}:", file=env.stdout)
            for key, data in sorted(files.items()):
                # A generated secret's value is never shown, nor its length.
                generated = key.startswith(GENERATED_PREFIX)
                shown = "a generated secret, not shown" if generated else f"{len(data)} bytes"
                print(f"  {key}: {shown}", file=env.stdout)
            return 0
        if args.action == "rm":
            removed = _remove(store, ref, args.force)
            print(f"removed {where}" if removed else f"no state in {where}", file=env.stdout)
            return 0
        unlocked = store.unlock(ref)
        print(f"unlocked {where}" if unlocked else f"{where} was not locked", file=env.stdout)
        return 0
    finally:
        store.close()


def _remove(store: StateStore, ref: StateRef, force: bool) -> bool:
    """Remove the state under its lock, as a run's `onDelete` does: a run in progress would
    otherwise save over the removal, or find its state gone under it."""
    if force:
        return store.remove(ref)
    try:
        with store.lock(ref, 0):
            return store.remove(ref)
    except LockHeld as exc:
        raise StoreError(
            Problem(
                f"not removed: {exc.problems[0].message}",
                hint="a run holds it: try again once it is done, or pass --force",
            )
        ) from None
