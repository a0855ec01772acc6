"""Where a step's commands run: its workdir, or a scratch copy of it (`copyWorkdir`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.base.errors import CommandFailed, InvalidError
from runner.engine.fileerrors import os_reason
from runner.resolve.prepare import PreparedStep


@contextmanager
def workspace(prepared: PreparedStep, tmpdir: str | None = None) -> Iterator[Path]:
    """The folder the step works in for the block; a copy (in `tmpdir`, the run's TMPDIR, when
    it is a folder) is removed afterwards."""
    source = prepared.workdir
    if not source.is_dir():
        raise InvalidError(
            prepared.step.document.problem(("spec", "workdir"), f"workdir {source} does not exist")
        )
    if not prepared.step.copy_workdir:
        yield source
        return
    # The run's TMPDIR, not the process's: `runner test` runs cases in its own process.
    where = tmpdir if tmpdir and os.path.isdir(tmpdir) else None
    scratch = Path(tempfile.mkdtemp(prefix=f"runner-{prepared.step.name}-", dir=where))
    try:
        workdir = scratch / source.name
        # Leftover state in the source must not stand in for the stored state.
        ignore = shutil.ignore_patterns(
            ".terraform", *(Path(f.path).name for f in prepared.step.state.files)
        )
        try:
            shutil.copytree(source, workdir, symlinks=True, ignore=ignore)
        except (shutil.Error, OSError) as exc:
            raise CommandFailed(
                f"step {prepared.step.name}: cannot copy the workdir {source} to {scratch} "
                f"(TMPDIR): {os_reason(exc)}"
            ) from None
        yield workdir
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
