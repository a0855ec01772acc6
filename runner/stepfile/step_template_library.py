"""StepTemplates found: those of the steps folder by name, template files by path, and the
runner's built-in ones (runner/library/), read only when a name is not in the folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document, parse_yaml_bytes
from runner.base.words import closest

TEMPLATE_KIND = "StepTemplate"


@dataclass
class Template:
    """One StepTemplate document and the file it is in."""

    name: str
    doc: Document
    file: Path  # resolved

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.doc.value.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def params(self) -> dict[str, Any]:
        params = self.spec.get("params")
        return params if isinstance(params, dict) else {}

    @property
    def where(self) -> str:
        return f"{self.doc.file}:{self.doc.position(('metadata', 'name'))[0]}"


@dataclass
class Library:
    """The templates of the steps folder by name, and template files loaded by path on demand.

    `read` parses a file outside the loaded set into documents and problems (the loader's own
    reader, so such a file is checked like any other); its problems are kept in `problems`.
    """

    read: Callable[[Path], tuple[list[Document], list[Problem]]]
    by_name: dict[str, Template] = field(default_factory=dict)
    by_file: dict[Path, list[Template]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, template: Template) -> None:
        self.by_name.setdefault(template.name, template)
        self.by_file.setdefault(template.file, []).append(template)

    def add_builtins(self) -> None:
        """The built-in templates whose names the steps folder does not use."""
        for template in builtin_templates():
            if template.name not in self.by_name:
                self.add(template)

    def add_file(self, file: Path) -> None:
        """A loaded file, so that `uses:` by path finds it even when it holds no template."""
        self.by_file.setdefault(file, [])

    def find(self, uses: str, doc: Document, file: Path) -> Template | Problem:
        """The template `uses` names, for the document `doc` of `file`.

        A name is looked up in the steps folder, then among the runner's built-in templates
        (read only then: most runs use none).
        """
        at = ("spec", "uses")
        if "/" not in uses:
            if uses not in self.by_name:
                self.add_builtins()
            if uses in self.by_name:
                return self.by_name[uses]
            guess = closest(uses, set(self.by_name))
            hint = (
                f'did you mean "{guess}"?'
                if guess
                else "templates: " + (", ".join(sorted(self.by_name)) or "none in the steps folder")
            )
            return doc.problem(at, f'no StepTemplate named "{uses}"', hint)
        target = (file.parent / uses).resolve()
        if target not in self.by_file:
            if not target.is_file():
                return doc.problem(at, f"no such file: {uses} (from {_folder(doc)})")
            docs, problems = self.read(target)
            self.problems += problems
            self.by_file[target] = []
            for found in docs:
                template = as_template(found, target)
                if template:
                    self.by_file[target].append(template)
        templates = self.by_file[target]
        if len(templates) != 1:
            count = "no StepTemplate" if not templates else f"{len(templates)} StepTemplates"
            advice = "name the template instead" if templates else None
            return doc.problem(at, f"{uses} holds {count}; a path must name a file of one", advice)
        return templates[0]


BUILTIN_FOLDER = Path(__file__).resolve().parent.parent / "library"


@cache
def builtin_templates() -> tuple[Template, ...]:
    """The templates shipped in the runner package (runner/library/), by file name."""
    templates: list[Template] = []
    for file in sorted(BUILTIN_FOLDER.glob("*.yaml")):
        docs, _ = parse_yaml_bytes(file.read_bytes(), str(file))  # tests check they are valid
        templates += (t for t in (as_template(d, file) for d in docs) if t)
    return tuple(templates)


def is_builtin(file: Path) -> bool:
    return file.parent == BUILTIN_FOLDER


def _folder(doc: Document) -> str:
    return os.path.dirname(doc.file) or "."


def as_template(doc: Document, file: Path) -> Template | None:
    """The Template of a document whose kind is StepTemplate and that has a name."""
    value = doc.value
    if not isinstance(value, dict) or value.get("kind") != TEMPLATE_KIND:
        return None
    metadata = value.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return Template(name, doc, file) if isinstance(name, str) else None


def uses_of(doc: Document) -> str | None:
    spec = doc.value.get("spec") if isinstance(doc.value, dict) else None
    uses = spec.get("uses") if isinstance(spec, dict) else None
    return uses if isinstance(uses, str) else None
