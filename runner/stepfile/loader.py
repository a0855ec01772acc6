"""Finding step files, and loading them into validated Steps with every problem collected."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.base.errors import InvalidError, Problem
from runner.base.source import MAX_FILE_BYTES, Document, parse_yaml_bytes, read_bytes
from runner.base.words import display
from runner.stepfile.build import build_step
from runner.stepfile.model import Step
from runner.stepfile.references import declared_outputs, reference_problems
from runner.stepfile.schema import check_schema, describe
from runner.stepfile.sensitivity import Taint, step_taint
from runner.stepfile.stamp import content_digest, trusted_digests
from runner.stepfile.step_template_library import (
    TEMPLATE_KIND,
    Library,
    Template,
    as_template,
    is_builtin,
    uses_of,
)
from runner.stepfile.step_templates import (
    Expansion,
    expand,
    param_paths,
    param_problems,
    template_problems,
)

if TYPE_CHECKING:  # the checks are imported only when a file is checked
    from runner.stepfile.language import StepReference

STEP_SUFFIXES = (".yaml", ".yml")
_NO_STEP_FILES = "no step files (*.yaml, *.yml) in this folder"


@dataclass
class StepSet:
    """The steps of some files, in file-name order, and everything wrong with them."""

    steps: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # of the files' contents, for stamps
    templates: list[Template] = field(default_factory=list)  # the folder's, not the built-in

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
    return sorted(folder / path for path, _ in walk_step_files(folder))


def walk_step_files(folder: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Each step file under `folder`: its path in the folder (POSIX) and its directory entry.

    *.yaml and *.yml, recursively; hidden files and folders skipped, symlinked folders not
    followed, unreadable folders passed over (as Path.rglob does). os.scandir gives the kinds
    without a stat per entry: the stamp's index walks the folder this way at every start-up.
    """
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, where = pending.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((f"{prefix}{name}/", entry.path))
                    elif name.endswith(STEP_SUFFIXES) and entry.is_file():
                        yield prefix + name, entry
        except PermissionError:
            continue


def load_steps(
    paths: list[Path],
    *,
    require_steps: bool = False,
    trust_stamp: bool = False,
    files: list[Path] | None = None,
) -> StepSet:
    """Load and check every step file; problems are collected, never raised.

    Two passes: every file is parsed first, so a Step may use a StepTemplate from any file;
    then templates are checked by themselves, and Steps as expanded from their templates.
    `trust_stamp`: files that `runner validate --stamp` recorded as valid (same content, same
    runner) skip the schema and semantic checks; see runner/stepfile/stamp.py.
    `files`: only these files of the folder in `paths`, as the stamp's index chose them
    (runner/stepfile/index.py), instead of all; nothing across files is checked then.
    """
    subset = files is not None
    if files is None:
        files, problems = discover(paths, require_steps=require_steps)
    else:
        problems = []
    result = StepSet(files=files, problems=problems)
    trusted: frozenset[str] = frozenset()
    if trust_stamp and len(paths) == 1 and paths[0].is_dir():
        trusted = trusted_digests(paths[0])
    loading = _Loading()
    for file in files:
        loading.add(_parse_file(file, result.digests, trusted))
    if not subset:
        # A file checked alone uses the StepTemplates of the folder it is in, as in a run.
        for file in _siblings(paths, files):
            loading.add_templates(_parse_file(file, [], frozenset()))
    for loaded in loading.files:
        loading.check_templates(loaded)
    for loaded in loading.files:
        result.steps.extend(loading.load_steps(loaded))
    for loaded in loading.files:
        loaded.problems.sort(key=lambda p: (p.line or 0, p.col or 0))
        result.problems.extend(loaded.problems)
    result.problems = _uses_merged(result.problems)
    result.problems.extend(loading.library.problems)
    result.templates = [t for t in loading.library.by_name.values() if not is_builtin(t.file)]
    if paths and not subset and all(path.is_dir() for path in paths):
        result.problems.extend(reference_problems(loading.refs, loading.outputs, loading.taints))
    return result


@dataclass
class _File:
    path: Path  # resolved
    name: str  # as displayed
    docs: list[Document]
    problems: list[Problem]
    trusted: bool = False


def _parse_file(file: Path, digests: list[str], trusted: frozenset[str]) -> _File:
    # An exception here is the runner's bug, not the file's: the CLI reports it (exit 4).
    name = display(file)
    data, problems = read_bytes(file, name, max_bytes=MAX_FILE_BYTES)
    if data is None:
        return _File(file.resolve(), name, [], problems)
    digest = content_digest(data)
    digests.append(digest)
    docs, found = parse_yaml_bytes(data, name)
    if not docs and not found:
        found.append(Problem("no step in this file (it is empty)", name, 1, 1))
    return _File(file.resolve(), name, docs, problems + found, digest in trusted)


class _Loading:
    """The state of one load_steps call across its passes."""

    def __init__(self) -> None:
        self.library = Library(read=self._read_outside)
        self.files: list[_File] = []
        self.names: dict[str, tuple[str, int, str]] = {}  # name -> where first defined, kind
        self.refs: list[StepReference] = []  # steps.NAME.outputs.X, checked once all are known
        self.outputs: dict[str, frozenset[str]] = {}  # step name -> the outputs it declares
        self.taints: dict[str, Taint] = {}  # step name -> what makes its outputs sensitive
        self.trusted: set[Path] = set()
        self.reported: set[tuple[object, ...]] = set()  # where a template's own problems are
        self.broken: set[str] = set()  # templates with problems of their own

    def add(self, loaded: _File) -> None:
        self.files.append(loaded)
        self.library.add_file(loaded.path)
        if loaded.trusted:
            self.trusted.add(loaded.path)
        for doc in loaded.docs:
            template = as_template(doc, loaded.path)
            if template and self._unique(doc, template.name, loaded, "template"):
                self.library.add(template)

    def add_templates(self, loaded: _File) -> None:
        """Only the StepTemplates of a file not checked itself (a sibling of one that is)."""
        self.library.add_file(loaded.path)
        for doc in loaded.docs:
            template = as_template(doc, loaded.path)
            if template and template.name not in self.names:
                self.names[template.name] = (loaded.name, 0, "template")
                self.library.add(template)

    def _unique(self, doc: Document, name: str, loaded: _File, kind: str) -> bool:
        if name in self.names:
            where, line, first = self.names[name]
            message = f'{kind} name "{name}" is already used in {where}:{line}'
            hint = (
                "step names must be unique across the steps directory"
                if kind == first == "step"
                else f"the {first} there has it: steps and templates share one set of names"
            )
            loaded.problems.append(doc.problem(("metadata", "name"), message, hint))
            return False
        self.names[name] = (loaded.name, doc.position(("metadata", "name"))[0], kind)
        return True

    def _read_outside(self, file: Path) -> tuple[list[Document], list[Problem]]:
        """A template file a `uses:` path names outside the files loaded: parsed and checked
        like one of them."""
        loaded = _parse_file(file, [], frozenset())
        self.check_templates(loaded)
        return loaded.docs, loaded.problems

    def check_templates(self, loaded: _File) -> None:
        for doc in loaded.docs:
            template = as_template(doc, loaded.path)
            if template is None or loaded.trusted:
                continue
            shapes, _ = check_schema(doc)
            later = param_paths(template)
            found = [p for p in shapes if not _under(p.path, later) and p.path not in later]
            found += template_problems(template)
            found += param_problems(template)
            found += self._expanded(doc, loaded).problems
            self.reported.update(_place(p) for p in found)
            if found:
                self.broken.add(template.name)
            loaded.problems += found

    def load_steps(self, loaded: _File) -> list[Step]:
        steps: list[Step] = []
        for doc in loaded.docs:
            if not isinstance(doc.value, dict):
                loaded.problems.append(
                    doc.problem(
                        (),
                        f"expected a step (a mapping of apiVersion, kind, metadata and spec), "
                        f"got {describe(doc.value)}",
                    )
                )
                continue
            if doc.value.get("kind") == TEMPLATE_KIND:
                continue
            step = self._load_step(doc, loaded)
            if step is not None:
                steps.append(step)
        return steps

    def _load_step(self, doc: Document, loaded: _File) -> Step | None:
        from runner.stepfile.checks import document_problems

        expansion = self._expanded(doc, loaded)
        broken = bool(self.broken.intersection(expansion.names))
        if broken:
            # Checked as it is, the step would only show what the template's problems cause
            # (no manifests, so "does nothing"): they are reported at the template alone.
            expansion = Expansion(None)
        full = expansion.doc or doc
        problems: list[Problem] = [*expansion.problems, *_step_only_problems(doc)]
        shapes: list[Problem] = []  # the schema's: a step with none is built (for validate)
        if not (loaded.trusted and all(self._trusted(f) for f in expansion.files)):
            shapes, wrong = check_schema(doc)
            if full is not doc:
                more, wrong = check_schema(full)
                shapes += more
            problems += shapes
            if expansion.doc is not None:  # else its own fields are not the whole step
                problems += (
                    p for p in document_problems(full, self.refs) if not _under(p.path, wrong)
                )
        seen: set[tuple[object, ...]] = set()
        for problem in problems:
            key = (*_place(problem), problem.col, problem.message)
            if key not in seen and _place(problem) not in self.reported:
                seen.add(key)
                loaded.problems.append(problem)
        if expansion.doc is None and not seen and not broken:  # said at a template: here too
            found = self.library.find(uses_of(doc) or "", doc, loaded.path)
            where = f" ({found.where})" if isinstance(found, Template) else ""
            message = f"template {uses_of(doc)}{where} cannot be used until its problems are fixed"
            loaded.problems.append(doc.problem(("spec", "uses"), message))
        metadata = doc.value.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(name, str):
            if not self._unique(doc, name, loaded, "step"):
                return None
            self.outputs[name] = declared_outputs(full)
            spec = full.value.get("spec") if isinstance(full.value, dict) else None
            self.taints[name] = step_taint(spec if isinstance(spec, dict) else {})
        if shapes or expansion.doc is None:
            return None
        try:
            step = build_step(full, loaded.path)
        except ValueError:
            if seen:  # what the checks reported (a duration past Go's) is what it met
                return None
            raise
        return replace(step, templates=tuple(expansion.names))

    def _trusted(self, file: Path) -> bool:
        """A fresh stamp vouches for the built-in templates too: its fingerprint covers them."""
        return file in self.trusted or (bool(self.trusted) and is_builtin(file))

    def _expanded(self, doc: Document, loaded: _File) -> Expansion:
        if uses_of(doc) is None:
            spec = doc.value.get("spec")
            # A `uses:` that is no name: the schema says so; the rest would be noise.
            return Expansion(None if isinstance(spec, dict) and "uses" in spec else doc)
        return expand(doc, loaded.path, self.library)


def _place(problem: Problem) -> tuple[object, ...]:
    """Where a problem is, to the node: a step using a template may word one the template's own
    check found differently (an undeclared param is also an unknown name), and at another
    column (a string a param was put into has no exact offsets). One message per node."""
    return (problem.file, problem.line, problem.path)


def _step_only_problems(doc: Document) -> list[Problem]:
    spec = doc.value.get("spec")
    if not isinstance(spec, dict):
        return []
    problems = []
    if "params" in spec:
        problems.append(
            doc.problem(
                ("spec", "params"),
                "params are declared by a StepTemplate, not a Step",
                "a Step gives a template's params with `with:`, beside `uses:`",
                key=True,
            )
        )
    if "with" in spec and "uses" not in spec:
        problems.append(
            doc.problem(
                ("spec", "with"),
                "`with:` gives a template's params, but this step uses no template",
                "add `uses: TEMPLATE`, or remove `with:`",
                key=True,
            )
        )
    return problems


def _under(path: str, wrong: set[str]) -> bool:
    """Whether `path` is one of `wrong` or inside one of them."""
    return any(path == w or (path.startswith(w) and path[len(w)] in ".[") for w in wrong if w)


def _siblings(paths: list[Path], files: list[Path]) -> list[Path]:
    """The step files beside each file named in `paths`, not loaded themselves."""
    named = [p for p in paths if p.is_file()]
    if not named:
        return []
    loaded = {f.resolve() for f in files}
    folders = {p.resolve().parent for p in named}
    found, _ = discover(sorted(folders))
    return [f for f in found if f.resolve() not in loaded]


# "(used by step a at steps.d/a.yaml:3)": a problem of a template that depends on the step
# using it (a reference it does not declare) is said once, naming every step it is true for.
_USED_BY = re.compile(r" \(used by (.+)\)$")


def _uses_merged(problems: list[Problem]) -> list[Problem]:
    merged: dict[tuple[object, ...], tuple[Problem, list[str]]] = {}
    out: list[Problem] = []
    for problem in problems:
        found = _USED_BY.search(problem.message)
        if found is None:
            out.append(problem)
            continue
        bare = problem.message[: found.start()]
        key = (problem.file, problem.line, problem.col, problem.path, bare, problem.hint)
        if key in merged:
            merged[key][1].append(found.group(1))
            continue
        users = [found.group(1)]
        merged[key] = (replace(problem, message=bare), users)
        out.append(merged[key][0])
    return [
        replace(p, message=f"{p.message} (used by {', '.join(merged[k][1])})")
        if (k := (p.file, p.line, p.col, p.path, p.message, p.hint)) in merged and merged[k][0] is p
        else p
        for p in out
    ]
