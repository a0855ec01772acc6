"""The one table of where `${{ }}` templates work in a step, what each place may read, and what
its text becomes.

`validate` checks every template against it (stepfile/checks.py); preparation renders each
template before the commands with the names and the rendering its place gives
(resolve/prepare.py); `runner plan` and the docs' table of templates (docs/step-format.md,
"Templates") name the places as it does, and a test holds the docs and the schema's
descriptions to it. Each place says:
- `phase`: read before the commands (inputs, values, steps, kratix) or after them (outputs too);
- `sink`: what its text becomes, which decides whether a sensitive name may be read there
  (runner/stepfile/sensitivity.py), and `secrets` may be read in `stdin` alone;
- `typed`: a string that is exactly one `${{ ref }}` keeps the value's type (data), or the
  value is inserted as text;
- `component`: each value fills one path component at most (no `/`, `..` or NUL), so a request
  can't move a path out of its folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.base.source import PathKey
from runner.language.interpolation import render, render_path
from runner.language.render import render_data
from runner.stepfile.sensitivity import ARGV, ENV, NAME, STDIN, WRITTEN

ANY = "*"  # any key or index
BELOW = "**"  # last: everything below (the documents of a manifest)
BEFORE, AFTER = "before", "after"


@dataclass(frozen=True)
class Place:
    pattern: PathKey
    phase: str
    sink: str
    shown: str  # as the docs and `validate`'s hint name it
    typed: bool = False
    component: bool = False
    each: bool = False  # in an entry with forEach, `item` and `index` may be read here

    @property
    def reads(self) -> tuple[str, ...]:
        """The names a template here may start with (item and index: in a forEach entry)."""
        names: tuple[str, ...] = ("inputs", "values", "steps", "kratix")
        names += ("outputs",) if self.phase == AFTER else ()
        names += ("item", "index") if self.each else ()
        return names + (("secrets",) if self.sink == STDIN else ())

    def matches(self, path: PathKey) -> bool:
        pattern = self.pattern
        if pattern[-1] == BELOW:
            pattern = pattern[:-1]
            path = path[: len(pattern)] if len(path) > len(pattern) else path
        if len(path) != len(pattern):
            return False
        return all(p in (ANY, k) for k, p in zip(path, pattern, strict=True))


MANIFEST: PathKey = ("spec", "manifests", ANY)


def _commands(group: str) -> tuple[Place, ...]:
    return (
        Place(("spec", group, ANY, "argv", ANY), BEFORE, ARGV, "argv items"),
        Place(("spec", group, ANY, "env", ANY), BEFORE, ENV, "command env values"),
        Place(("spec", group, ANY, "workdir"), BEFORE, NAME, "command workdir", component=True),
        Place(("spec", group, ANY, "stdin"), BEFORE, STDIN, "stdin"),
        # The short form, an argv list: last, so that the fields above match first.
        Place(("spec", group, ANY, ANY), BEFORE, ARGV, "argv items"),
    )


PLACES: tuple[Place, ...] = (
    Place(("spec", "env", ANY), BEFORE, ENV, "env values"),
    Place(("spec", "workdir"), BEFORE, NAME, "workdir", component=True),
    Place(("spec", "state", "name"), BEFORE, NAME, "state.name"),
    Place(("spec", "state", "namespace"), BEFORE, NAME, "state.namespace"),
    Place(("spec", "state", "bucket"), BEFORE, NAME, "state.bucket"),
    *_commands("run"),
    *_commands("dryRun"),
    # A value and everything below it (nested data); the fields of a `{file, query}` value
    # are not templates (stepfile/checks.py tells them apart: the path alone cannot).
    Place(("spec", "status", ANY, BELOW), AFTER, WRITTEN, "status values", typed=True),
    Place(("spec", "manifests", ANY, "path"), AFTER, WRITTEN, "manifest path", each=True),
    # A request picks a file: each value fills part of one path component, below the folder
    # written before the first template (runner.language.source_paths).
    Place((*MANIFEST, "from"), AFTER, NAME, "manifest from", component=True, each=True),
    Place((*MANIFEST, "document", BELOW), AFTER, WRITTEN, "manifests", typed=True, each=True),
    Place((*MANIFEST, "documents", BELOW), AFTER, WRITTEN, "manifests", typed=True, each=True),
    Place((*MANIFEST, "set", BELOW), AFTER, WRITTEN, "manifests", typed=True, each=True),
    Place(("spec", "destinations", ANY, "directory"), AFTER, WRITTEN, "destinations"),
    Place(("spec", "destinations", ANY, "matchLabels", ANY), AFTER, WRITTEN, "destinations"),
    Place(("spec", "output", ANY, "from"), AFTER, NAME, "output from", component=True),
    Place(("spec", "waitFor", "message"), AFTER, WRITTEN, "waitFor.message"),
    Place(("spec", "suspend", "message"), AFTER, WRITTEN, "suspend.message"),
)

# Prose: a `${{` in a description is just text.
PROSE: tuple[PathKey, ...] = (
    ("spec", "inputs", ANY, "description"),
    ("spec", "secrets", ANY, "description"),
)


def place_of(path: PathKey) -> Place | None:
    """The place a string at `path` is, or None where templates are not expanded."""
    return next((p for p in PLACES if p.matches(path)), None)


def render_at(path: PathKey, value: Any, context: Mapping[str, Any]) -> Any:
    """`value`, found at `path` of a step, rendered as its place says: from the names the place
    may read, typed (data), as text, or each value in one path component. Preparation and the
    engine render every template through here."""
    place = place_of(path)
    if place is None:
        raise AssertionError(f"no template place at {path}")  # a runner bug: exit 4
    names = {name: context[name] for name in place.reads if name in context}
    if place.typed:
        return render_data(value, names)
    if place.component:
        return render_path(value, names)
    return render(value, names)


def is_prose(path: PathKey) -> bool:
    return any(Place(p, BEFORE, ENV, "").matches(path) for p in PROSE)


def where_templates_work() -> str:
    """The places, named once each, for `validate`'s hint."""
    shown = list(dict.fromkeys(p.shown for p in PLACES))
    return "templates work in " + ", ".join(shown[:-1]) + " and " + shown[-1]
