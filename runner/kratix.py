"""The Kratix pipeline contract: where the request and outputs live, the KRATIX_* environment,
status.yaml merging and workflow-control.yaml."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.errors import InvalidError, Problem
from runner.spec.source import Document, read_yaml_file

DEFAULT_ROOT = Path("/kratix")
RESERVED_STATUS_KEY = "kratix"  # Kratix rejects a status.yaml with this top-level key


@dataclass(frozen=True)
class KratixContext:
    """One pipeline container's view of its workflow."""

    input_dir: Path
    output_dir: Path
    metadata_dir: Path
    action: str = "configure"
    workflow: str = "resource"
    promise: str | None = None
    pipeline: str | None = None
    object: dict[str, str | None] = field(default_factory=dict)
    dry_run: bool = False

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        input_dir: str | None = None,
        output_dir: str | None = None,
        metadata_dir: str | None = None,
    ) -> KratixContext:
        env = environ.get
        return cls(
            input_dir=Path(input_dir) if input_dir else DEFAULT_ROOT / "input",
            output_dir=Path(output_dir) if output_dir else DEFAULT_ROOT / "output",
            metadata_dir=Path(metadata_dir) if metadata_dir else DEFAULT_ROOT / "metadata",
            action=env("KRATIX_WORKFLOW_ACTION") or "configure",
            workflow=env("KRATIX_WORKFLOW_TYPE") or "resource",
            promise=env("KRATIX_PROMISE_NAME") or None,
            pipeline=env("KRATIX_PIPELINE_NAME") or None,
            object={
                key: env(f"KRATIX_OBJECT_{key.upper()}") or None
                for key in ("kind", "group", "version", "name", "namespace")
            },
            dry_run=(env("KRATIX_DRY_RUN") or "").lower() == "true",
        )

    @property
    def request_file(self) -> Path:
        return self.input_dir / "object.yaml"

    def with_request(self, request: Mapping[str, Any]) -> KratixContext:
        """Fill object identity the environment didn't give from the request itself."""
        meta = request.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        api_version = str(request.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        found = {
            "kind": request.get("kind"),
            "group": group or None,
            "version": version or None,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
        }
        merged = {
            k: self.object.get(k) or (str(v) if v is not None else None) for k, v in found.items()
        }
        return replace(self, object=merged)

    def template_values(self) -> dict[str, Any]:
        """What `${{ kratix.* }}` templates see."""
        return {
            "action": self.action,
            "workflow": self.workflow,
            "promise": self.promise,
            "pipeline": self.pipeline,
            "object": dict(self.object),
            "dirs": {
                "input": str(self.input_dir),
                "output": str(self.output_dir),
                "metadata": str(self.metadata_dir),
            },
        }

    def command_env(self) -> dict[str, str]:
        """The folders in use, for the commands (they may have been moved by --input etc.)."""
        return {
            "KRATIX_INPUT_DIR": str(self.input_dir),
            "KRATIX_OUTPUT_DIR": str(self.output_dir),
            "KRATIX_METADATA_DIR": str(self.metadata_dir),
        }


def read_request(ctx: KratixContext) -> Document:
    """The resource request (or the Promise, in a promise workflow) as a located document."""
    path = ctx.request_file
    if not path.is_file():
        raise InvalidError(
            Problem(
                f"no request at {path}",
                hint="Kratix mounts it at /kratix/input/object.yaml; elsewhere pass --input DIR",
            )
        )
    docs, problems = read_yaml_file(path)
    if problems:
        raise InvalidError(*problems)
    if len(docs) != 1 or not isinstance(docs[0].value, dict):
        raise InvalidError(Problem("the request must be one YAML mapping", str(path), 1, 1))
    return docs[0]


def merge_status(metadata_dir: Path, values: Mapping[str, Any]) -> Path:
    """Merge `values` into status.yaml at the top level, as Kratix does between containers."""
    import yaml

    path = metadata_dir / "status.yaml"
    current: dict[str, Any] = {}
    if path.is_file():
        # Read as step files are (YAML 1.2, bounded aliases): an earlier container's `on:` key
        # must stay "on", not turn into `true:`.
        docs, problems = read_yaml_file(path)
        if problems:
            raise InvalidError(*problems)
        if docs and isinstance(docs[0].value, dict):
            current = docs[0].value
    current.update({k: v for k, v in values.items() if k != RESERVED_STATUS_KEY})
    current.pop(RESERVED_STATUS_KEY, None)
    write_atomic(path, yaml.safe_dump(current, sort_keys=False, allow_unicode=True).encode())
    return path


def write_workflow_control(metadata_dir: Path, retry_after_seconds: int) -> Path:
    """Ask Kratix to run the workflow again later (e.g. while another run holds the lock)."""
    path = metadata_dir / "workflow-control.yaml"
    write_atomic(path, f"retryAfter: {retry_after_seconds}s\n".encode())
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
