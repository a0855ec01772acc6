"""A step's `manifests:` and `destinations:`: built as data, checked, then written.

The builders (`build_entry`, `build_manifests`, `destination_selectors`) render and check
everything and write nothing: `runner plan` shows what they build. Every manifest is built and
checked before the first is written, so a step whose manifests
can't all be made (a bad set path, a path out of the folder, a secret's value in a document)
fails with nothing written to the output folder. Destination selectors of this step are added
to the pipeline's `destination-selectors.yaml`, which Kratix refuses if two name one folder.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.base.errors import CommandFailed, InvalidError, Problem
from runner.base.files import write_atomic
from runner.base.source import PathKey
from runner.engine.confined import Refused, check_target, write_below
from runner.engine.fileerrors import os_reason
from runner.engine.manifest_sources import Staged, dry_run_skip, entry_documents
from runner.language.documents import ManifestError, dump, output_path, secret_in
from runner.language.expressions import ExpressionError, compile_expression
from runner.language.foreach import ForEachError, item_context, items_of
from runner.language.interpolation import TemplateError
from runner.language.render import RenderError
from runner.platform import interrupts, kratix_yaml
from runner.platform.kratix import KratixContext, read_metadata_file
from runner.platform.log import Logger
from runner.platform.masking import Masker
from runner.resolve.values import holds
from runner.stepfile.model import Manifest, Step
from runner.stepfile.template_places import render_at

DESTINATIONS_FILE = "destination-selectors.yaml"


Decide = Callable[[Step, str, Mapping[str, Any], PathKey], "bool | str"]
# An entry's documents for one item: the documents, a file's already staged (`from:`, `file:`),
# what a preview says of them, or None for a file a dry run did not make.
Documents = list[Any] | Staged | str
Source = Callable[[Manifest, Mapping[str, Any]], "Documents | None"]


def run_decision(step: Step, condition: str, context: Mapping[str, Any], path: PathKey) -> bool:
    """An `if:` as a run decides it: an expression that can't be evaluated fails the step."""
    return holds(step, condition, context, path, CommandFailed)


@dataclass
class ManifestFile:
    """One file a manifest entry builds: where it goes and its documents, in order."""

    manifest: Manifest
    relative: str  # the rendered `path:`
    target: Path  # inside the output folder
    parts: list[Documents] = field(default_factory=list)  # one per item, in order
    items: list[int] = field(default_factory=list)  # the forEach items it holds
    written: bool | str = True  # the `if:` verdict (a preview may say "decided later")

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts if not isinstance(p, str))

    @property
    def documents(self) -> list[Any]:
        """The documents built as data (a staged file's are not: they are on disk)."""
        return [d for p in self.parts if isinstance(p, list) for d in p]

    def shown(self) -> Any:
        """Its documents as `runner plan` shows them, or what the preview says of them."""
        said = [p for p in self.parts if isinstance(p, str)]
        if said:
            return said[0] if len(said) == 1 else said
        return self.documents

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes: the parts one after the other, `---` between them."""
        for i, part in enumerate(self.parts):
            if i:
                yield b"---\n"
            if isinstance(part, Staged):
                for chunk in part.chunks():
                    interrupts.stop_if_received()
                    yield chunk
            elif isinstance(part, list):
                yield dump(part).encode()

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, Staged):
                part.file.close()


@dataclass
class EntryBuild:
    """What one `manifests:` entry builds: its files, and the items its `if:` skipped."""

    manifest: Manifest
    files: list[ManifestFile]
    skipped: list[int | None]  # forEach items skipped by `if:`; [None]: the entry is skipped
    items: int | None = None  # with forEach: how many items it gave
    not_made: list[str] = field(default_factory=list)  # paths a dry run made no file for


def build_entry(
    step: Step,
    manifest: Manifest,
    context: Mapping[str, Any],
    output_dir: Path,
    masker: Masker,
    source: Source | None = None,
    decide: Decide = run_decision,
) -> EntryBuild:
    """Render one entry, with every check a write makes, writing nothing: `source` gives the
    documents of one item (a run's: `run_source`; a preview's its own).

    A forEach entry renders once per item; items whose path renders the same share one file,
    in item order. Raises CommandFailed (located), or step_outputs.Pending when it reads the
    outputs of a step not run yet.
    """
    if manifest.for_each is None:
        items: list[tuple[int | None, Mapping[str, Any]]] = [(None, context)]
    else:
        found = _evaluate(step, manifest.for_each, context, (*manifest.path, "forEach"))
        try:
            listed = items_of(found, manifest.for_each)
        except ForEachError as exc:
            raise CommandFailed(
                step.document.problem((*manifest.path, "forEach"), exc.message, exc.hint)
            ) from None
        items = [(i, item_context(context, item, i)) for i, item in enumerate(listed)]
    built = EntryBuild(manifest, [], [], None if manifest.for_each is None else len(items))
    files: dict[str, ManifestFile] = {}
    source = source or run_source(step, None, masker, dry_run=False)
    for index, names in items:
        verdict: bool | str = True
        if manifest.condition:
            verdict = decide(step, manifest.condition, names, (*manifest.path, "if"))
        if verdict is False:
            built.skipped.append(index)
            continue
        relative, target, documents = _render(step, manifest, names, output_dir, source, index)
        if documents is None:
            built.not_made.append(relative)
            continue
        found_secret = secret_in(documents, masker) if isinstance(documents, list) else None
        if found_secret is not None:
            raise CommandFailed(
                step.document.problem(
                    manifest.path,
                    f"manifest {relative}: {found_secret} would hold a secret's value; nothing "
                    "was written",
                    "manifests are written to the output folder and the GitOps repository: "
                    "pass secrets to the cluster as Secrets, never as text",
                )
            )
        file = files.get(str(target))  # `a//b.yaml` and `a/b.yaml` are one file
        if file is None:
            file = files[str(target)] = ManifestFile(manifest, relative, target, written=verdict)
        if isinstance(documents, str) or len(documents):
            file.parts.append(documents)
        if index is not None:
            file.items.append(index)
        if verdict is not True:
            file.written = verdict
    built.files = list(files.values())
    return built


def run_source(step: Step, workdir: Path | None, masker: Masker, dry_run: bool) -> Source:
    """The documents as a run reads them: inline, or a file streamed and staged."""
    return lambda manifest, names: entry_documents(step, manifest, names, workdir, masker, dry_run)


def build_manifests(
    step: Step, context: Mapping[str, Any], output_dir: Path, masker: Masker
) -> list[EntryBuild]:
    """Every entry of the step built and checked, nothing written (no `file:` read: that is
    after the commands, in their workdir)."""
    return [build_entry(step, m, context, output_dir, masker) for m in step.manifests]


def write_manifests(
    step: Step,
    context: dict[str, Any],
    ctx: KratixContext,
    log: Logger,
    workdir: Path | None = None,
) -> None:
    source = run_source(step, workdir, log.masker, ctx.dry_run)
    built: list[EntryBuild] = []
    try:
        for manifest in step.manifests:  # every entry built and checked before any is written
            built.append(build_entry(step, manifest, context, ctx.output_dir, log.masker, source))
        _write(step, built, ctx, log)
    finally:
        for file in (f for entry in built for f in entry.files):
            file.close()


def _write(step: Step, built: list[EntryBuild], ctx: KratixContext, log: Logger) -> None:
    for entry in built:
        manifest = entry.manifest
        for relative in entry.not_made:
            log.info(f"manifest {relative}: skipped ({dry_run_skip(manifest)})", step=step.name)
        if entry.items == 0:
            log.info(
                f"manifest {manifest.target}: no items (forEach: {manifest.for_each})",
                step=step.name,
            )
        elif entry.skipped == [None]:
            log.info(
                f"manifest {manifest.target}: skipped (if: {manifest.condition})", step=step.name
            )
        elif entry.skipped:
            log.info(
                f"manifest {manifest.target}: {len(entry.skipped)} of {entry.items} item(s) "
                f"skipped (if: {manifest.condition})",
                step=step.name,
            )
    for file in (f for entry in built for f in entry.files):
        try:
            write_below(ctx.output_dir, file.relative, chunks=file.chunks())
        except Refused as exc:  # a link made since the check: still never followed
            raise CommandFailed(_refused(step, file.manifest, file.relative, exc)) from None
        except OSError as exc:
            raise CommandFailed(
                f"step {step.name}: cannot write {file.target}: {os_reason(exc)}"
            ) from None
        log.info(f"manifest: {len(file)} document(s) → {file.target}", step=step.name)


def _evaluate(step: Step, expression: str, context: Mapping[str, Any], path: PathKey) -> Any:
    try:
        return compile_expression(expression).evaluate(context)
    except ExpressionError as exc:
        raise CommandFailed(step.document.problem(path, exc.message)) from None


def _render(
    step: Step,
    manifest: Manifest,
    context: Mapping[str, Any],
    output_dir: Path,
    source: Source,
    index: int | None,
) -> tuple[str, Path, Documents | None]:
    """One item's path as written and where it goes (checked, nothing written), and its
    documents."""
    which = "" if index is None else f" (forEach item {index})"
    relative = manifest.target
    try:
        relative = render_at((*manifest.path, "path"), manifest.target, context)
        target = output_path(output_dir, relative)
        check_target(output_dir, relative)
        documents = source(manifest, context)
    except (ManifestError, RenderError) as exc:
        raise CommandFailed(_located(step, manifest, exc, which)) from None
    except TemplateError as exc:
        raise CommandFailed(
            step.document.problem((*manifest.path, "path"), exc.message + which)
        ) from None
    except Refused as exc:
        raise CommandFailed(_refused(step, manifest, relative, exc)) from None
    except InvalidError as exc:  # a malformed file, or a base file changed since validate
        raise CommandFailed(*exc.problems) from None
    return relative, target, documents


def destination_selectors(
    step: Step, context: Mapping[str, Any], metadata_dir: Path, masker: Masker
) -> tuple[Path, list[Any], list[dict[str, Any]]]:
    """The destination-selectors file, every selector it will hold, and this step's: built and
    checked (a folder selected twice, a secret's value), nothing written. Raises CommandFailed."""
    path = metadata_dir / DESTINATIONS_FILE
    try:
        selectors = read_metadata_file(path) or []
    except InvalidError as exc:
        raise CommandFailed(*exc.problems) from None
    if not isinstance(selectors, list):
        raise CommandFailed(f"{path}: expected a list of destination selectors")
    folders = {_folder(s.get("directory", "")) for s in selectors if isinstance(s, dict)}
    added: list[dict[str, Any]] = []
    for destination in step.destinations:
        try:
            where = destination.path
            labels = {
                k: render_at((*where, "matchLabels", k), v, context)
                for k, v in destination.match_labels.items()
            }
            directory = destination.directory or ""
            directory = render_at((*where, "directory"), directory, context) if directory else ""
        except TemplateError as exc:
            raise CommandFailed(step.document.problem(destination.path, exc.message)) from None
        entry: dict[str, Any] = {"matchLabels": labels}
        if directory:
            entry["directory"] = directory
        if secret_in(entry, masker) is not None:
            raise CommandFailed(
                step.document.problem(destination.path, "a destination would hold a secret's value")
            )
        folder = _folder(directory)
        if "/" in folder.strip("/") or folder.startswith(".."):
            raise CommandFailed(
                step.document.problem(
                    destination.path,
                    f'directory "{directory}" is not a top-level folder of the output',
                    "Kratix applies selectors to top-level folders only",
                )
            )
        if folder in folders:
            what = "the whole output" if folder == "." else f'directory "{folder}"'
            raise CommandFailed(
                step.document.problem(
                    destination.path,
                    f"{what} already has destination selectors in {path}",
                    "Kratix refuses two selectors for one folder",
                )
            )
        folders.add(folder)
        added.append(entry)
    return path, [*selectors, *added], added


def write_destinations(
    step: Step, context: dict[str, Any], ctx: KratixContext, log: Logger
) -> None:
    if not step.destinations:
        return
    path, selectors, _ = destination_selectors(step, context, ctx.metadata_dir, log.masker)
    try:
        write_atomic(path, kratix_yaml.dump(selectors).encode())
    except OSError as exc:
        raise CommandFailed(f"cannot write {path}: {os_reason(exc)}") from None
    log.info(f"destinations: {len(step.destinations)} selector(s) → {path}", step=step.name)


def _folder(directory: Any) -> str:
    """Kratix compares directories after filepath.Clean ("" is ".")."""
    return posixpath.normpath(directory) if isinstance(directory, str) and directory else "."


def _refused(step: Step, manifest: Manifest, relative: str, exc: Refused) -> Problem:
    return step.document.problem(
        (*manifest.path, "path"),
        f"manifest {relative}: {exc}; nothing is written through a symbolic link in the "
        "output folder",
        "remove the link, or write the manifest to another path",
    )


def _located(
    step: Step, manifest: Manifest, exc: ManifestError | RenderError, which: str = ""
) -> Problem:
    inner = exc.path
    if isinstance(exc, RenderError):
        inner = ("documents", *exc.path)
    # The model folds `document:` into `documents`: point at what the file says.
    raw = step.document.value["spec"]["manifests"][manifest.path[-1]]
    if inner[:1] == ("documents",) and "document" in raw:
        inner = ("document", *inner[2:])
    offset = getattr(exc, "offset", None)
    return step.document.problem((*manifest.path, *inner), exc.message + which, offset=offset)
