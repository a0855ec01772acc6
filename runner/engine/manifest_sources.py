"""Where a manifest entry's documents come from, and what an `output:` entry copies.

A manifest's documents are inline (`document:`, `documents:`), a base file the step brings
(`from:`, relative to the step file, a template may pick the file), or a YAML file the commands
wrote (`file:`, relative to the workdir). A file is streamed: each document is parsed, changed
by `set:`, checked and written to a temporary file before the next is read (`Staged`), so a
30 MiB operator bundle never sits in memory as Python objects.

What a request picks (a templated `from:`) and what the commands wrote (`file:`) is opened
without following a link (runner.base.files.open_below): a link there could lead anywhere,
a mounted token included. A literal `from:` is opened as it always was, links and all: it is
the step author's path, checked by `validate`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from runner.base.errors import CommandFailed
from runner.base.files import LinkRefused, open_below
from runner.language.documents import (
    BaseTooLarge,
    ManifestError,
    base_documents,
    build,
    copied_documents,
)
from runner.language.interpolation import TemplateError
from runner.language.source_paths import link_message, open_base, reads_outputs, render_source
from runner.platform import interrupts
from runner.platform.masking import Masker
from runner.resolve.step_outputs import Pending
from runner.resolve.values import holds
from runner.stepfile.model import Manifest, OutputCopy, Step

__all__ = [
    "Staged",
    "dry_run_skip",
    "entry_documents",
    "output_applies",
    "output_source",
    "planned_output",
]

_CHUNK = 1 << 20


@dataclass
class Staged:
    """The documents of a file (`from:`, `file:`), already changed, checked and written as YAML
    to a temporary file (removed when closed): what write_manifests writes, chunk by chunk."""

    file: BinaryIO
    count: int

    def __len__(self) -> int:
        return self.count

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(_CHUNK):
            yield chunk


def entry_documents(
    step: Step,
    manifest: Manifest,
    context: Mapping[str, Any],
    workdir: Path | None,
    masker: Masker,
    dry_run: bool = False,
) -> list[dict[str, Any]] | Staged | None:
    """The documents of one entry. None in a dry run, for a `file:` that no command wrote, or a
    `from:` that reads an output no command made (the caller skips the entry, logging
    dry_run_skip). Raises ManifestError (located in the entry),
    InvalidError (located in a malformed file) or CommandFailed (a `file:` not written)."""
    if manifest.base is None and manifest.file is None:
        return build(context, documents=manifest.documents)
    if dry_run and manifest.base is not None and reads_outputs(manifest.base):
        try:
            render_source(manifest.base, context)
        except TemplateError:
            return None  # an output no dryRun command made: null, so no file is picked
    try:
        with _opened(step, manifest, context, workdir) as (stream, name):
            if stream is None:
                if dry_run:
                    return None
                raise CommandFailed(
                    step.document.problem(
                        (*manifest.path, "file"),
                        f"manifest {manifest.target}: the commands wrote no {name}",
                        "file: reads a YAML file the commands write, relative to the workdir",
                    )
                )
            documents = base_documents(stream, name)
            staged = Staged(tempfile.TemporaryFile(), 0)  # noqa: SIM115 - the caller's to close
            try:
                for text in copied_documents(
                    documents, masker, context, manifest.set, _field(manifest)
                ):
                    interrupts.stop_if_received()  # a million documents take a while
                    staged.file.write(text.encode())
                    staged.count += 1
            except BaseException:
                staged.file.close()
                raise
            return staged
    except BaseTooLarge as exc:
        raise ManifestError(str(exc), (_field(manifest),)) from None


def dry_run_skip(manifest: Manifest) -> str:
    """Why entry_documents gave None: what the log says of the skipped entry."""
    if manifest.file is not None:
        return f"{manifest.file} not written in a dry run"
    return f"{manifest.base} picks no file in a dry run (it reads outputs)"


def _field(manifest: Manifest) -> str:
    return "file" if manifest.file is not None else "from"


@contextmanager
def _opened(
    step: Step, manifest: Manifest, context: Mapping[str, Any], workdir: Path | None
) -> Iterator[tuple[BinaryIO | None, str]]:
    """The entry's file open for reading, and its name as shown; (None, name) for a `file:`
    the commands did not write."""
    if manifest.file is not None:
        assert workdir is not None, "file: is read after the commands, in their workdir"
        parts = os.path.normpath(manifest.file).split("/")
        name = str(workdir.joinpath(*parts))
        try:
            fd = open_below(workdir, parts)
        except (FileNotFoundError, NotADirectoryError):
            yield None, name
            return
        except LinkRefused as exc:
            raise ManifestError(link_message(exc, "file:"), ("file",)) from None
        with os.fdopen(fd, "rb") as stream:
            yield stream, name
        return
    assert manifest.base is not None
    fd, name = open_base(step.folder, manifest.base, context, os.path.dirname(step.document.file))
    with os.fdopen(fd, "rb") as stream:
        yield stream, name


# -- output: -------------------------------------------------------------------------------


def output_applies(step: Step, copy: OutputCopy, context: Mapping[str, Any]) -> bool:
    """Whether an `output:` entry's `if:` holds (after the commands: a problem is exit 1)."""
    return not copy.condition or holds(
        step, copy.condition, context, (*copy.path[:-1], "if"), CommandFailed
    )


class NotPicked(Exception):
    """An `output:` entry whose `from` reads an output that a dry run did not make."""


def output_source(
    step: Step, copy: OutputCopy, context: Mapping[str, Any], dry_run: bool = False
) -> tuple[str, str]:
    """An `output:` entry's `from` and `to` rendered; `to` defaults to the rendered `from`.
    Raises CommandFailed (located at `from`) for a value a path may not hold, NotPicked in a
    dry run when that value is an output no command made."""
    try:
        source = render_source(copy.source, context).shown
    except TemplateError as exc:
        if dry_run and reads_outputs(copy.source):
            raise NotPicked(copy.source) from None
        raise CommandFailed(
            step.document.problem((*copy.path[:-1], "from"), exc.message, offset=exc.offset)
        ) from None
    return source, source if copy.target == copy.source else copy.target


def planned_output(
    step: Step, copy: OutputCopy, context: Mapping[str, Any], output_dir: Path, decided: Any
) -> dict[str, Any]:
    """What `runner plan` shows of an `output:` entry: `decided` says whether its `if:` holds
    (runner.verbs.plan_results.decided)."""
    entry: dict[str, Any] = {"from": copy.source, "to": str(output_dir / copy.target)}
    if copy.condition:
        entry["if"] = copy.condition
        entry["copied"] = decided(step, copy.condition, context, (*copy.path[:-1], "if"))
    if reads_outputs(copy.source):
        return entry  # known after the commands: shown as written
    try:
        source, target = output_source(step, copy, context)
    except Pending:
        return entry
    except CommandFailed as exc:
        entry["error"] = exc.problems[0].format()
    else:
        entry.update({"from": source, "to": str(output_dir / target)})
    return entry


# -- plan ----------------------------------------------------------------------------------

_PLAN_BYTES = 1 << 20  # a larger base is summed up in the plan, not printed


def planned_documents(step: Step, manifest: Manifest, context: Mapping[str, Any]) -> Any:
    """What `runner plan` shows of an entry's documents: built as the run builds them where
    they are known before the commands, else a sentence. Raises what build raises, and
    Pending for what reads a step not run yet."""
    whole = manifest.documents and len(manifest.documents) == 1 and manifest.documents[0]
    if isinstance(whole, str) and reads_outputs(whole):
        return f"{whole}: the document is known after the commands"
    if manifest.file is not None:
        return f"read from {manifest.file} in the workdir after the commands"
    if manifest.base is None:
        return build(context, documents=manifest.documents)
    if reads_outputs(manifest.base):
        return f"from {manifest.base}: the file is picked after the commands"
    try:
        with _opened(step, manifest, context, None) as (stream, name):
            assert stream is not None
            size = os.fstat(stream.fileno()).st_size
            documents = base_documents(stream, name)
            if size <= _PLAN_BYTES:
                return build(context, base=list(documents), sets=manifest.set)
            copied = copied_documents(documents, Masker(), context, manifest.set)
            count = sum(1 for _ in copied)
            return f"{count} document(s) copied from {name} ({size / (1 << 20):.1f} MiB)"
    except BaseTooLarge as exc:
        raise ManifestError(str(exc), ("from",)) from None
