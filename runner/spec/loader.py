"""Finding step files, and loading them into validated Steps with every problem collected."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import InvalidError, Problem
from runner.spec.build import build_step
from runner.spec.model import Step
from runner.spec.references import declared_outputs, reference_problems
from runner.spec.schema import check_schema, describe
from runner.spec.source import MAX_FILE_BYTES, parse_yaml_bytes, read_bytes
from runner.spec.stamp import content_digest, trusted_digests

if TYPE_CHECKING:  # the checks are imported only when a file is checked
    from runner.spec.language import StepReference

STEP_SUFFIXES = (".yaml", ".yml")
_NO_STEP_FILES = "no step files (*.yaml, *.yml) in this folder"


@dataclass
class StepSet:
    """The steps of some files, in file-name order, and everything wrong with them."""

    steps: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # of the files' contents, for stamps

    def raise_for_problems(self) -> None:
        if self.problems:
            raise InvalidError(*self.problems)

    def by_name(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def default_steps_dir(option: str | None, environ: Mapping[str, str]) -> Path:
    """`--steps-dir`, else `$RUNNER_STEPS_DIR`, else `/steps.d` if it exists, else `./steps.d`."""
    if option:
        return Path(option)
    if environ.get("RUNNER_STEPS_DIR"):
        return Path(environ["RUNNER_STEPS_DIR"])
    return Path("/steps.d") if Path("/steps.d").is_dir() else Path("steps.d")


def discover(paths: list[Path], *, require_steps: bool = False) -> tuple[list[Path], list[Problem]]:
    """The step files named, and those in the folders named (recursively), each once.

    Hidden files and folders (`.git`, editor swap files) inside a folder are skipped.
    `require_steps`: a folder with no step files is a problem (`validate` wants one).
    """
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            if path.is_dir():
                found = _step_files(path)
                if not found and require_steps:
                    problems.append(Problem(_NO_STEP_FILES, display(path)))
                files.extend(found)
            elif path.is_file():
                files.append(path)
            elif path.exists():
                problems.append(Problem("not a regular file", display(path)))
            else:
                problems.append(Problem("no such file or directory", display(path)))
        except OSError as exc:
            problems.append(Problem(f"cannot read: {exc.strerror or exc}", display(path)))
    unique = list(dict.fromkeys(files))
    # File-name order decides run order, whatever folder a file is in.
    unique.sort(key=lambda p: (p.name, str(p)))
    return unique, problems


def _step_files(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*"):
        if path.suffix not in STEP_SUFFIXES:
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found)


def display(path: Path) -> str:
    """A path as users should see it in messages: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)


def load_steps(
    paths: list[Path], *, require_steps: bool = False, trust_stamp: bool = False
) -> StepSet:
    """Load and check every step file; problems are collected, never raised.

    `trust_stamp`: files that `runner validate --stamp` recorded as valid (same content, same
    runner) skip the schema and semantic checks; see runner/spec/stamp.py.
    """
    files, problems = discover(paths, require_steps=require_steps)
    result = StepSet(files=files, problems=problems)
    trusted: frozenset[str] = frozenset()
    if trust_stamp and len(paths) == 1 and paths[0].is_dir():
        trusted = trusted_digests(paths[0])
    names: dict[str, tuple[str, int]] = {}  # step name -> where it was first defined
    refs: list[StepReference] = []  # steps.NAME.outputs.X, checked once every step is known
    outputs: dict[str, frozenset[str]] = {}  # step name -> the outputs it declares
    for file in files:
        name = display(file)
        try:
            data, found = read_bytes(file, name, max_bytes=MAX_FILE_BYTES)
            steps: list[Step] = []
            if data is not None:
                digest = content_digest(data)
                result.digests.append(digest)
                found, steps = _load_file(
                    data, file, name, names, refs, outputs, checked=digest in trusted
                )
        except Exception as exc:  # a bug of ours, not the file's: still no traceback
            found, steps = [_internal_error(exc, name)], []
        found.sort(key=lambda p: (p.line or 0, p.col or 0))
        result.problems.extend(found)
        result.steps.extend(steps)
    if paths and all(path.is_dir() for path in paths):
        result.problems.extend(reference_problems(refs, outputs))
    return result


def _load_file(
    data: bytes,
    file: Path,
    name: str,
    names: dict[str, tuple[str, int]],
    refs: list[StepReference],
    outputs: dict[str, frozenset[str]],
    *,
    checked: bool,
) -> tuple[list[Problem], list[Step]]:
    from runner.spec.checks import document_problems

    docs, problems = parse_yaml_bytes(data, name)
    steps: list[Step] = []
    if not docs and not problems:
        problems.append(Problem("no step in this file (it is empty)", name, 1, 1))
    for doc in docs:
        if not isinstance(doc.value, dict):
            problems.append(
                doc.problem(
                    (),
                    f"expected a step (a mapping of apiVersion, kind, metadata and spec), "
                    f"got {describe(doc.value)}",
                )
            )
            continue
        found: list[Problem] = []
        if not checked:
            found, wrong = check_schema(doc)
            problems += found
            problems += (p for p in document_problems(doc, refs) if not _under(p.path, wrong))
        metadata = doc.value.get("metadata")
        step_name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(step_name, str):
            if step_name in names:
                where, line = names[step_name]
                message = f'step name "{step_name}" is already used in {where}:{line}'
                hint = "step names must be unique across the steps directory"
                problems.append(doc.problem(("metadata", "name"), message, hint))
                continue
            names[step_name] = (name, doc.position(("metadata", "name"))[0])
            outputs[step_name] = declared_outputs(doc)
        if not found:
            steps.append(build_step(doc, file.resolve()))
    return problems, steps


def _under(path: str, wrong: set[str]) -> bool:
    """Whether `path` is one of `wrong` or inside one of them."""
    return any(path == w or (path.startswith(w) and path[len(w)] in ".[") for w in wrong if w)


def _internal_error(exc: Exception, name: str) -> Problem:
    return Problem(
        f"internal error while checking this file: {type(exc).__name__}: {exc}",
        name,
        hint="this is a bug in runner; please report it with the file",
    )
