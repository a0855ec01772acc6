"""A case's starting state: `state/STEP/KEY` files, stored as the step's state before the run.

The author writes each state file under the step's name and the file's state key (the `key:` of
`state.files`, by default the file name), so a case can test a second run: `state/create-bucket/
tfstate` makes create-bucket start from that Terraform state. A generated secret is seeded
under its key, `state/create-db/generated-secret.DB_PASSWORD`. Where the state goes in the store
(its rendered name and namespace) is worked out as `runner run` does, from the case's request
and environment, so the author never writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runner.base.errors import InvalidError, Problem
from runner.base.words import closest, display
from runner.stepfile.loader import StepSet

SEED_DIR = "state"

Seed = dict[str, dict[str, Path]]  # step name -> state key -> the file holding its content


def read_seed(case_dir: Path, steps: StepSet) -> tuple[Seed, list[Problem]]:
    """The case's `state/STEP/KEY` files, and a problem for each one no step would restore.

    When the steps folder itself has problems, step names are not checked: the run reports
    those problems, and a step that failed to load would only be "unknown" here."""
    root = case_dir / SEED_DIR
    if not root.exists():
        return {}, []
    if not root.is_dir():
        return {}, [Problem(f"expected a folder of {SEED_DIR}/STEP/KEY files", display(root))]
    by_name = {s.name: s for s in steps.steps}
    seed: Seed = {}
    problems: list[Problem] = []
    for folder in _visible(root):
        if not folder.is_dir():
            problems.append(_misplaced(folder, f"a file directly in {SEED_DIR}/"))
            continue
        step = by_name.get(folder.name)
        if step is None:
            if not steps.problems:
                guess = closest(folder.name, set(by_name))
                hint = (
                    f'did you mean "{guess}"?'
                    if guess
                    else "steps: " + (", ".join(sorted(by_name)) or "none")
                )
                problems.append(
                    Problem(f'no step named "{folder.name}"', display(folder), hint=hint)
                )
            continue
        # A generated secret's key too: a second run keeps the value a first run made.
        keys = {f.key for f in step.state.files} | {s.state_key for s in step.generated}
        if not keys or step.state.store == "none":
            problems.append(
                Problem(
                    f"step {step.name} keeps no state (no state.files, no generated secret)",
                    display(folder),
                )
            )
            continue
        files: dict[str, Path] = {}
        for file in _visible(folder):
            if not file.is_file():
                problems.append(_misplaced(file, "a folder inside a step's state folder"))
            elif file.name not in keys:
                guess = closest(file.name, keys)
                hint = f'did you mean "{guess}"?' if guess else "keys: " + ", ".join(sorted(keys))
                problems.append(
                    Problem(
                        f'step {step.name} has no state key "{file.name}"', display(file), hint=hint
                    )
                )
            else:
                files[file.name] = file
        seed[step.name] = files
    return seed, problems


def _visible(folder: Path) -> list[Path]:
    """A folder's entries in name order, without hidden ones (`.gitkeep`)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _misplaced(path: Path, what: str) -> Problem:
    return Problem(
        f"{what}: the state of a step is {SEED_DIR}/STEP/KEY",
        display(path),
        hint="KEY is the state file's key (state.files[].key, by default its file name)",
    )


def seed_state(
    seed: Seed,
    steps: StepSet,
    env: Mapping[str, str],
    folders: Mapping[str, Path],
) -> list[str]:
    """Store each seeded step's files in the run's local state store, where `runner run` will
    look for them, finding the state as `runner state` does (a run's Session, previewing);
    returns warnings for steps whose state could not be placed (the run reports why: a
    request the step refuses)."""
    import io

    from runner.engine.session import Session
    from runner.platform.kratix import KratixContext
    from runner.platform.log import Logger
    from runner.state import StoreSpec
    from runner.state.local import LocalStore

    if not seed:
        return []
    store = LocalStore(folders["state"])
    ctx = KratixContext.from_environment(
        env, str(folders["input"]), str(folders["output"]), str(folders["metadata"])
    )
    warnings = []
    for name, files in seed.items():
        if steps.by_name(name) is None:
            continue  # the steps folder has problems, which the run reports
        quiet = Logger(stream=io.StringIO(), out=io.StringIO())
        try:
            session = Session.open(
                steps.steps, [name], ctx, env, quiet, StoreSpec("local", str(store.root)),
                need_secrets=False, preview=True,
            )  # fmt: skip
        except InvalidError as exc:
            warnings.append(f"{SEED_DIR}/{name} not seeded: {exc.problems[0].format()}")
            continue
        ref = session.prepared[0].state_ref if session.prepared else None
        if ref is not None:
            store.save(ref, {key: path.read_bytes() for key, path in files.items()})
        elif session.prepared and session.prepared[0].waiting_for:
            warnings.append(
                f"{SEED_DIR}/{name} not seeded: its state is named from outputs of other steps"
            )
    return warnings
