"""A step's `manifests:` and `destinations:`: built as data, checked, then written.

Every manifest is built and checked before the first is written, so a step whose manifests
can't all be made (a bad set path, a path out of the folder, a secret's value in a document)
fails with nothing written to the output folder. Destination selectors of this step are added
to the pipeline's `destination-selectors.yaml`, which Kratix refuses if two name one folder.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from runner.base.errors import CommandFailed, InvalidError, Problem
from runner.base.files import write_atomic
from runner.engine.confined import Refused, check_target, write_below
from runner.engine.fileerrors import os_reason
from runner.engine.manifest_sources import Staged, dry_run_skip, entry_documents
from runner.language.documents import ManifestError, dump, output_path, secret_in
from runner.language.interpolation import TemplateError, render
from runner.language.render import RenderError
from runner.platform import kratix_yaml
from runner.platform.kratix import KratixContext, read_metadata_file
from runner.platform.log import Logger
from runner.resolve.values import holds
from runner.stepfile.model import Manifest, Step

DESTINATIONS_FILE = "destination-selectors.yaml"


def write_manifests(
    step: Step,
    context: dict[str, Any],
    ctx: KratixContext,
    log: Logger,
    workdir: Path | None = None,
) -> None:
    built: list[tuple[Manifest, str, Path, list[Any] | Staged]] = []
    for manifest in step.manifests:
        where = manifest.path
        if manifest.condition and not holds(
            step, manifest.condition, context, (*where, "if"), CommandFailed
        ):
            log.info(
                f"manifest {manifest.target}: skipped (if: {manifest.condition})", step=step.name
            )
            continue
        try:
            relative = render(manifest.target, context)
            target = output_path(ctx.output_dir, relative)
            check_target(ctx.output_dir, relative)
            documents = entry_documents(step, manifest, context, workdir, log.masker, ctx.dry_run)
            if documents is None:
                log.info(f"manifest {relative}: skipped ({dry_run_skip(manifest)})", step=step.name)
                continue
        except (ManifestError, RenderError) as exc:
            raise CommandFailed(_located(step, manifest, exc)) from None
        except TemplateError as exc:
            raise CommandFailed(step.document.problem((*where, "path"), exc.message)) from None
        except Refused as exc:
            raise CommandFailed(_refused(step, manifest, relative, exc)) from None
        except InvalidError as exc:  # the base file changed since validate
            raise CommandFailed(*exc.problems) from None
        found = None if isinstance(documents, Staged) else secret_in(documents, log.masker)
        if found is not None:
            raise CommandFailed(
                step.document.problem(
                    where,
                    f"manifest {relative}: {found} would hold a secret's value; nothing was written",
                    "manifests are written to the output folder and the GitOps repository: "
                    "pass secrets to the cluster as Secrets, never as text",
                )
            )
        built.append((manifest, relative, target, documents))
    for manifest, relative, target, documents in built:
        try:
            if isinstance(documents, Staged):
                with documents.file:
                    write_below(ctx.output_dir, relative, chunks=documents.chunks())
            else:
                write_below(ctx.output_dir, relative, dump(documents).encode())
        except Refused as exc:  # a link made since the check: still never followed
            raise CommandFailed(_refused(step, manifest, relative, exc)) from None
        except OSError as exc:
            raise CommandFailed(
                f"step {step.name}: cannot write {target}: {os_reason(exc)}"
            ) from None
        log.info(f"manifest: {len(documents)} document(s) → {target}", step=step.name)


def write_destinations(
    step: Step, context: dict[str, Any], ctx: KratixContext, log: Logger
) -> None:
    if not step.destinations:
        return
    path = ctx.metadata_dir / DESTINATIONS_FILE
    try:
        selectors = read_metadata_file(path) or []
    except InvalidError as exc:
        raise CommandFailed(*exc.problems) from None
    if not isinstance(selectors, list):
        raise CommandFailed(f"{path}: expected a list of destination selectors")
    folders = {_folder(s.get("directory", "")) for s in selectors if isinstance(s, dict)}
    for destination in step.destinations:
        try:
            labels = {k: render(v, context) for k, v in destination.match_labels.items()}
            directory = render(destination.directory, context) if destination.directory else ""
        except TemplateError as exc:
            raise CommandFailed(step.document.problem(destination.path, exc.message)) from None
        entry: dict[str, Any] = {"matchLabels": labels}
        if directory:
            entry["directory"] = directory
        if secret_in(entry, log.masker) is not None:
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
        selectors.append(entry)
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


def _located(step: Step, manifest: Manifest, exc: ManifestError | RenderError) -> Problem:
    inner = exc.path
    if isinstance(exc, RenderError):
        inner = ("documents", *exc.path)
    # The model folds `document:` into `documents`: point at what the file says.
    raw = step.document.value["spec"]["manifests"][manifest.path[-1]]
    if inner[:1] == ("documents",) and "document" in raw:
        inner = ("document", *inner[2:])
    offset = getattr(exc, "offset", None)
    return step.document.problem((*manifest.path, *inner), exc.message, offset=offset)
