"""A case: finding case folders, loading one into a Case, its steps folder and its secrets."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.base.source import Document
from runner.base.words import display
from runner.cases.case_files import (
    CASE_FILE,
    ENV_FILE,
    REQUEST,
    STEPS_FILE,
    TREES,
    as_list,
    parse_env_file,
    parse_steps_file,
    read_case_yaml,
    seconds,
)
from runner.cases.ignore import Ignored, read_ignore
from runner.cases.seed import SEED_DIR, Seed, read_seed
from runner.cases.step_outputs import StepOutputs, read_step_outputs
from runner.stepfile.loader import StepSet, default_steps_dir, load_steps

# Env file variables masked even when no step declares them as a secret.
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|API_KEY", re.I
)
# case.yaml option -> the variable it sets in the run's environment.
_KRATIX_VARIABLES = {
    "action": "KRATIX_WORKFLOW_ACTION",
    "workflow": "KRATIX_WORKFLOW_TYPE",
    "promise": "KRATIX_PROMISE_NAME",
    "pipeline": "KRATIX_PIPELINE_NAME",
}


@dataclass(frozen=True)
class Expect:
    exit_code: int = 0
    stdout_contains: tuple[str, ...] = ()
    stderr_contains: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    path: Path
    steps_dir: Path
    steps: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    kratix: dict[str, str] = field(default_factory=dict)  # KRATIX_* from case.yaml
    expect: Expect = Expect()
    secret_names: set[str] = field(default_factory=set)  # masked, whatever they are named
    shown_names: set[str] = field(default_factory=set)  # `mask: false` secrets: never masked
    timeout: float | None = None
    description: str = ""
    seed: Seed = field(default_factory=dict)  # state/STEP/KEY: the state the steps start from
    ignore: Ignored = field(default_factory=dict)  # file -> fields left out of the comparison
    step_outputs: StepOutputs = field(
        default_factory=StepOutputs
    )  # what earlier containers recorded

    @property
    def name(self) -> str:
        return display(self.path)

    @property
    def input_dir(self) -> Path:
        return self.path / "input"

    def secrets(self) -> dict[str, str]:
        """The env file values that are masked: declared by a step, named in case.yaml, or
        named like a secret, unless the steps declare it with `mask: false` (as `run` shows it)."""
        return {
            k: v
            for k, v in self.env.items()
            if k in self.secret_names or (_SECRET_NAME.search(k) and k not in self.shown_names)
        }


def load_cases(
    paths: Iterable[str], steps_dir_option: str | None, environ: Mapping[str, str]
) -> list[Case]:
    """Every case named (see find_cases); InvalidError names everything wrong with any of them."""
    _steps_of.cache_clear()  # a process may run `runner test` again after the steps changed
    found, problems = find_cases(paths)
    cases: list[Case] = []
    for path in found:
        try:
            cases.append(load_case(path, steps_dir_option, environ))
        except InvalidError as exc:
            problems += exc.problems
    if problems:
        raise InvalidError(*problems, Problem("no case was run: fix the case folders above"))
    return cases


def find_cases(paths: Iterable[str]) -> tuple[list[Path], list[Problem]]:
    """The case folders named; a folder that is not a case but holds cases stands for them."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            what = "no such folder" if not path.exists() else "not a folder"
            problems.append(Problem(f"{what}: a case is a folder holding {REQUEST}", raw))
        elif _looks_like_case(path):
            found.append(path)
        elif inner := sorted({p.parent.parent for p in path.rglob(str(REQUEST))}):
            found.extend(inner)
        else:
            problems.append(
                Problem(
                    f"no {REQUEST} in this folder or below",
                    raw,
                    hint=f"a case folder holds {REQUEST} and the expected output/ and metadata/",
                )
            )
    unique = dict.fromkeys(p.resolve() for p in found)
    return [_relative_if_inside_cwd(p) for p in unique], problems


def _looks_like_case(path: Path) -> bool:
    markers = ("input", CASE_FILE, ENV_FILE, STEPS_FILE, SEED_DIR, *TREES)
    return any((path / m).exists() for m in markers)


def _relative_if_inside_cwd(path: Path) -> Path:
    """An absolute path, relative to the current folder when inside it (shorter to show)."""
    return Path(os.path.relpath(path)) if path.is_relative_to(Path.cwd().resolve()) else path


def load_case(path: Path, steps_dir_option: str | None, environ: Mapping[str, str]) -> Case:
    """Read a case folder; InvalidError (exit 2) names everything wrong with it."""
    problems: list[Problem] = []
    if not (path / REQUEST).is_file():
        problems.append(
            Problem(
                f"no request: {REQUEST} is missing",
                display(path),
                hint=f"every case folder needs the resource request the steps read, as {REQUEST}",
            )
        )
    case_file = path / CASE_FILE
    doc, found = read_case_yaml(case_file) if case_file.is_file() else (None, [])
    problems += found
    options: dict[str, Any] = doc.value if doc is not None and isinstance(doc.value, dict) else {}
    ignore, found = read_ignore(doc) if doc is not None else ({}, [])
    problems += found
    step_outputs, found = read_step_outputs(doc) if doc is not None else (StepOutputs(), [])
    problems += found

    env, found = parse_env_file(path / ENV_FILE) if (path / ENV_FILE).is_file() else ({}, [])
    problems += found

    steps, found = _steps(path, doc, options)
    problems += found
    steps_dir, found = _steps_dir(path, options, steps_dir_option, environ)
    problems += found
    seed, found = read_seed(path, steps_of(steps_dir)) if not found else ({}, [])
    problems += found
    if problems:
        raise InvalidError(*problems)

    expect = options.get("expect") or {}
    masked, shown = declared_secret_envs(steps_dir)
    return Case(
        path=path,
        steps_dir=steps_dir,
        steps=steps,
        env=env,
        kratix={
            variable: str(options[key])
            for key, variable in _KRATIX_VARIABLES.items()
            if options.get(key) is not None
        },
        expect=Expect(
            exit_code=int(expect.get("exitCode", 0)),
            stdout_contains=tuple(str(s) for s in as_list(expect.get("stdoutContains"))),
            stderr_contains=tuple(str(s) for s in as_list(expect.get("stderrContains"))),
        ),
        secret_names=set(as_list(options.get("secrets"))) | masked,
        shown_names=shown - masked,
        timeout=seconds(options.get("timeout")),
        description=str(options.get("description") or ""),
        seed=seed,
        ignore=ignore,
        step_outputs=step_outputs,
    )


def _steps(
    path: Path, doc: Document | None, options: dict[str, Any]
) -> tuple[list[str], list[Problem]]:
    """The steps to run, from the steps file or case.yaml (never both); [] for every step."""
    if not (path / STEPS_FILE).is_file():
        return [str(s) for s in as_list(options.get("steps"))], []
    steps, problems = parse_steps_file(path / STEPS_FILE)
    if doc is not None and "steps" in options:
        problems.append(
            doc.problem(
                ("steps",),
                f"the steps are named both here and in {display(path / STEPS_FILE)}",
                hint="keep one of them",
            )
        )
    return steps, problems


def _steps_dir(
    path: Path, options: dict[str, Any], steps_dir_option: str | None, environ: Mapping[str, str]
) -> tuple[Path, list[Problem]]:
    """The case's steps folder (see resolve_steps_dir), and a problem if it does not exist."""
    declared = options.get("stepsDir")
    steps_dir = resolve_steps_dir(
        path, declared if isinstance(declared, str) else None, steps_dir_option, environ
    )
    if steps_dir.exists():
        return steps_dir, []
    where = (
        f"stepsDir in {display(path / CASE_FILE)}"
        if declared
        else "--steps-dir, $RUNNER_STEPS_DIR, a steps.d above the case, /steps.d, ./steps.d"
    )
    message = f"steps folder {display(steps_dir)} does not exist (from {where})"
    return steps_dir, [Problem(message, display(path))]


def resolve_steps_dir(
    case_dir: Path, declared: str | None, option: str | None, environ: Mapping[str, str]
) -> Path:
    """`stepsDir` of case.yaml (relative to the case), else `--steps-dir`, else
    `$RUNNER_STEPS_DIR`, else the nearest `steps.d` in the case folder or above it, else the
    CLI's default (`/steps.d` if it exists, else `./steps.d`)."""
    if declared:
        return case_dir / declared
    if option:
        return Path(option)
    if environ.get("RUNNER_STEPS_DIR"):
        return Path(environ["RUNNER_STEPS_DIR"])
    here = case_dir.resolve()
    for folder in (here, *here.parents):
        if (folder / "steps.d").is_dir():
            return _relative_if_inside_cwd(folder / "steps.d")
    return default_steps_dir(None, environ)


def declared_secret_envs(steps_dir: Path) -> tuple[set[str], set[str]]:
    """The environment variables the steps read as secrets (`secrets: {X: {env: NAME}}`):
    those masked, and those declared `mask: false`."""
    masked: set[str] = set()
    shown: set[str] = set()
    for step in steps_of(steps_dir).steps:
        for secret in step.secrets:
            if secret.env:
                (masked if secret.mask else shown).add(secret.env)
    return masked, shown


def steps_of(steps_dir: Path) -> StepSet:
    """The steps of a case's steps folder; their problems are the run's to report."""
    return _steps_of(steps_dir.resolve())


@functools.cache  # cases share their steps folder: load it once
def _steps_of(steps_dir: Path) -> StepSet:
    return load_steps([steps_dir])
