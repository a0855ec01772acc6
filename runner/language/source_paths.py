"""Paths a request may pick a file by: a manifest's `from:` and an `output:` entry's `from:`.

`from: "../templates/tekton-${{ inputs.version }}.yaml"`: the folders before the first
component with a template are the author's (the *fixed* part, `../templates`); each template
fills part of one component after it, so the request picks a name in that folder and never a
path elsewhere. A rendered value holding "/", NUL, being "." or "..", or empty is refused
(render_path), and the literal components after the first template may not be "", "." or ".."
(`validate` says so), so what is opened is always below the fixed folder. The reader opens
those components without following a link (runner.base.files.open_below).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner.base.files import LinkRefused, open_below
from runner.language.documents import ManifestError
from runner.language.interpolation import TemplateError, has_template, references, render_path

__all__ = [
    "SourcePath",
    "component_problem",
    "link_message",
    "open_base",
    "reads_outputs",
    "render_source",
    "split_source",
]


@dataclass(frozen=True)
class SourcePath:
    """A `from:` rendered: the fixed folder as written, and the components picked below it."""

    fixed: str  # "" for the base folder itself (the step file's, or the workdir)
    below: tuple[str, ...]  # rendered; empty when the path holds no template

    @property
    def shown(self) -> str:
        return posixpath.join(self.fixed, *self.below) if self.below else self.fixed


def split_source(text: str) -> tuple[str, list[str]]:
    """The fixed folder of a templated path, and its components from the first templated one.

    `../templates/tekton-${{ inputs.version }}.yaml` → ("../templates", ["tekton-${{ ... }}.yaml"]).
    A path without a template is all fixed: (text, [])."""
    if not has_template(text):
        return text, []
    parts = text.split("/")
    first = next(i for i, part in enumerate(parts) if has_template(part))
    return "/".join(parts[:first]), parts[first:]


def component_problem(text: str, folder: bool = False) -> str | None:
    """What is wrong with the literal components after the first template, or None. `folder`:
    the path may name a folder, ending in `/` (an `output:` entry's `from`)."""
    _, below = split_source(text)
    if folder and len(below) > 1 and below[-1] == "":
        below = below[:-1]
    for part in below[1:]:
        if part in ("", ".", ".."):
            shown = f'"{part}"' if part else "an empty component (//, or a trailing /)"
            return (
                f"{shown} after a template: a path a request picks from stays in the folder "
                "before its first template"
            )
    if below and below[-1] == "":
        return "ends with /: a templated path names a file"
    return None


def render_source(text: str, context: Mapping[str, object]) -> SourcePath:
    """The path rendered, each template filling part of one non-empty component. Raises
    TemplateError (naming the reference, never its value)."""
    fixed, below = split_source(text)
    return SourcePath(fixed, tuple(render_path(part, context, allow_empty=False) for part in below))


def reads_outputs(text: str) -> bool:
    """Whether the path reads this step's outputs: then it is known only after the commands."""
    return has_template(text) and any(ref.root == "outputs" for ref in references(text))


def open_base(
    folder: Path, text: str, context: Mapping[str, object], shown_folder: str
) -> tuple[int, str]:
    """A read descriptor of the base file `text` (relative to `folder`, the step file's) picks,
    and its name as shown (relative to `shown_folder`, as the step file is shown). A literal path
    is opened as written; below the fixed folder of a templated one no link is followed.
    Raises ManifestError located at `from`."""
    try:
        picked = render_source(text, context)
    except TemplateError as exc:
        raise ManifestError(exc.message, ("from",), exc.offset) from None
    name = os.path.normpath(os.path.join(shown_folder, picked.shown))
    try:
        if picked.below:
            return open_below(folder / picked.fixed, picked.below), name
        fd = os.open(folder / picked.fixed, os.O_RDONLY | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ManifestError(f"base file {name} is not a regular file", ("from",))
        return fd, name
    except (FileNotFoundError, NotADirectoryError):
        raise ManifestError(f'base file "{picked.shown}" not found ({name})', ("from",)) from None
    except LinkRefused as exc:
        raise ManifestError(link_message(exc, "from:"), ("from",)) from None
    except OSError as exc:
        raise ManifestError(f"cannot read base file {name}: {exc.strerror}", ("from",)) from None


def link_message(exc: LinkRefused, field: str) -> str:
    if "symbolic link" not in (exc.strerror or ""):
        return f"{exc.filename} {exc.strerror}: {field} reads a regular file"
    return (
        f"{exc.filename} {exc.strerror}: {field} follows no symbolic link in what a request "
        "picks or the commands wrote"
    )
