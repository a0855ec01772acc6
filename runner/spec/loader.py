"""Finding step files, and loading them into validated Steps with every problem collected."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import InvalidError, Problem
from runner.spec.model import Step, build_step
from runner.spec.schema import schema_problems
from runner.spec.source import read_yaml_file

STEP_SUFFIXES = (".yaml", ".yml")


@dataclass
class StepSet:
    """The steps of some files, in file-name order, and everything wrong with them."""

    steps: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def raise_for_problems(self) -> None:
        if self.problems:
            raise InvalidError(*self.problems)

    def by_name(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def default_steps_dir(option: str | None = None) -> Path:
    """`--steps-dir`, else `$RUNNER_STEPS_DIR`, else `/steps.d` if it exists, else `./steps.d`."""
    if option:
        return Path(option)
    if os.environ.get("RUNNER_STEPS_DIR"):
        return Path(os.environ["RUNNER_STEPS_DIR"])
    return Path("/steps.d") if Path("/steps.d").is_dir() else Path("steps.d")


def discover(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """The step files named, and those in the folders named (recursively), each once."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in STEP_SUFFIXES and p.is_file())
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem("no such file or directory", display(path)))
    unique = list(dict.fromkeys(files))
    # File-name order decides run order, whatever folder a file is in.
    unique.sort(key=lambda p: (p.name, str(p)))
    return unique, problems


def display(path: Path) -> str:
    """A path as users should see it in messages: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_steps(paths: list[Path]) -> StepSet:
    """Load and check every step file; problems are collected, never raised."""
    from runner.spec.checks import semantic_problems

    files, problems = discover(paths)
    result = StepSet(files=files, problems=problems)
    first_seen: dict[str, Step] = {}
    for file in files:
        docs, parse_problems = read_yaml_file(file, display(file))
        result.problems.extend(parse_problems)
        for doc in docs:
            if not isinstance(doc.value, dict):
                result.problems.append(doc.problem((), "a step file holds mappings (apiVersion, kind, metadata, spec)"))
                continue
            found = schema_problems(doc)
            if found:
                result.problems.extend(found)
                continue
            step = build_step(doc, file.resolve())
            result.problems.extend(semantic_problems(step))
            earlier = first_seen.get(step.name)
            if earlier:
                line = earlier.document.position(("metadata", "name"))[0]
                result.problems.append(
                    doc.problem(
                        ("metadata", "name"),
                        f'step name "{step.name}" is already used in {earlier.document.file}:{line}',
                    )
                )
                continue
            first_seen[step.name] = step
            result.steps.append(step)
    return result
