"""`validate`'s rules for the files a step's results read: a manifest's base file (`from:`, a
template may pick it), a file the commands wrote (`file:`), a document that is one template,
and `output:` entries (`if:`, a templated `from:`).

A templated path is checked as far as it is known before a request: its fixed part (the folders
before the first template) must name a folder that exists, and no literal component after the
first template may be "", "." or "..", so what a request picks stays in that folder
(runner.language.source_paths).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.base.source import Document, PathKey
from runner.language.documents import BaseTooLarge, base_documents
from runner.language.interpolation import TemplateError, has_template, single_reference
from runner.language.source_paths import component_problem, split_source
from runner.stepfile.names import Scope


def base_file_problems(doc: Document, path: PathKey, file: Path, shown: str) -> Iterator[Problem]:
    """A literal base file parses as YAML documents (read one at a time: a 30 MiB bundle is
    checked without holding it) and is at most MAX_BASE_BYTES."""
    try:
        with open(file, "rb") as stream:
            for _ in base_documents(stream, shown):
                pass
    except OSError as exc:
        yield doc.problem(path, f'cannot read base file "{shown}": {exc.strerror or exc}')
    except BaseTooLarge as exc:
        yield doc.problem(path, str(exc), "split the file, or ship it in the output with output:")
    except InvalidError as exc:  # located in the base file itself
        yield from exc.problems


def picked_path_problems(
    doc: Document, path: PathKey, text: str, folder: Path, relative_to: str
) -> Iterator[Problem]:
    """A templated path: literal components after the first template, and its fixed folder."""
    problem = component_problem(text, folder=relative_to == "the workdir")
    if problem is not None:
        yield doc.problem(path, f'"{text}": {problem}')
        return
    fixed = split_source(text)[0]
    if not (folder / fixed).is_dir():
        yield doc.problem(
            path,
            f'the folder "{fixed or "."}" before the template in "{text}" does not exist',
            f"the path is relative to {relative_to}; a template picks a file in that folder",
        )


def written_file_problems(doc: Document, path: PathKey, file: Any) -> Iterator[Problem]:
    """`file:` names a file below the workdir: relative, never climbing out, no template."""
    if not isinstance(file, str) or not file:
        return
    normal = posixpath.normpath(file)
    if file.startswith("/") or normal == ".." or normal.startswith("../") or normal == ".":
        yield doc.problem(
            path,
            f'file "{file}" is not a file below the workdir',
            'file: reads a file the commands wrote, relative to the workdir: e.g. "file: out.yaml"',
        )
    elif file.endswith("/"):
        yield doc.problem(path, f'file "{file}" names a folder: file: reads one YAML file')


def whole_document_problems(doc: Document, path: PathKey, document: Any) -> Iterator[Problem]:
    """A `document:` given as a string is one template, the whole document."""
    if not isinstance(document, str):
        return
    try:
        whole = single_reference(document)
    except TemplateError:
        return  # reported where templates are checked
    if whole is None:
        yield doc.problem(
            path,
            "a document given as text must be exactly one template, e.g. "
            '"${{ outputs.rendered }}": its value (a mapping) is the document',
            "write the document as a mapping, or compute it as an output or value",
        )


Expression = Callable[[PathKey, Any, Scope], Iterator[Problem]]


def output_problems(
    doc: Document, spec: dict[str, Any], expression: Expression, results: Scope
) -> Iterator[Problem]:
    """`output:` entries: `if:` is an expression after the commands; a templated `from:`
    keeps to its folder, which must exist when no command can make it (a step with no
    commands and a literal workdir)."""
    output = spec.get("output")
    commands = bool(spec.get("run") or spec.get("dryRun"))
    workdir = spec.get("workdir", ".")
    for i, item in enumerate(output if isinstance(output, list) else ()):
        if not isinstance(item, dict):
            continue
        yield from expression(("spec", "output", i, "if"), item.get("if"), results)
        source = item.get("from")
        if not isinstance(source, str) or not has_template(source):
            continue
        problem = component_problem(source, folder=True)
        if problem is not None:
            yield doc.problem(("spec", "output", i, "from"), f'"{source}": {problem}')
        elif not commands and isinstance(workdir, str) and not has_template(workdir):
            folder = Path(doc.file).parent / workdir
            yield from picked_path_problems(
                doc, ("spec", "output", i, "from"), source, folder, "the workdir"
            )
