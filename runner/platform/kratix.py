"""The Kratix pipeline contract: where the request and outputs live, the KRATIX_* environment,
status.yaml merging and workflow-control.yaml."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.base.files import write_atomic
from runner.base.source import MAX_FILE_BYTES, Document, read_yaml_file
from runner.base.value_types import kind_of
from runner.platform import kratix_yaml
from runner.platform.settings import DRY_RUN

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
    crd_plural: str | None = None
    cluster_scoped: bool = False
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
        # Absolute: commands run in their workdir, where a relative --output would point elsewhere.
        return cls(
            input_dir=Path(input_dir).absolute() if input_dir else DEFAULT_ROOT / "input",
            output_dir=Path(output_dir).absolute() if output_dir else DEFAULT_ROOT / "output",
            metadata_dir=(
                Path(metadata_dir).absolute() if metadata_dir else DEFAULT_ROOT / "metadata"
            ),
            action=env("KRATIX_WORKFLOW_ACTION") or "configure",
            workflow=env("KRATIX_WORKFLOW_TYPE") or "resource",
            promise=env("KRATIX_PROMISE_NAME") or None,
            pipeline=env("KRATIX_PIPELINE_NAME") or None,
            object={
                key: env(f"KRATIX_OBJECT_{key.upper()}") or None
                for key in ("kind", "group", "version", "name", "namespace")
            },
            crd_plural=env("KRATIX_CRD_PLURAL") or None,
            cluster_scoped=(env("KRATIX_CLUSTER_SCOPED") or "").lower() == "true",
            dry_run=DRY_RUN.read(environ),
        )

    @property
    def request_file(self) -> Path:
        return self.input_dir / "object.yaml"

    def with_request(self, request: Mapping[str, Any]) -> KratixContext:
        """Fill object identity the environment didn't give from the request itself.

        In a dry run the request wins: Kratix runs the preview under a temporary object
        (`KRATIX_OBJECT_NAME=kratix-dry-run-...`) but mounts the live request, whose names the
        state and the output must use.
        """
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
        given = {k: str(v) if v is not None else None for k, v in found.items()}
        if self.dry_run:
            merged = {k: given[k] or self.object.get(k) for k in found}
        else:
            merged = {k: self.object.get(k) or given[k] for k in found}
        return replace(self, object=merged)

    def template_values(self) -> dict[str, Any]:
        """What `${{ kratix.* }}` templates see."""
        return {
            "action": self.action,
            "workflow": self.workflow,
            "promise": self.promise,
            "pipeline": self.pipeline,
            "object": dict(self.object),
            "crdPlural": self.crd_plural,
            "clusterScoped": self.cluster_scoped,
            "dryRun": self.dry_run,
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
    docs, problems = read_yaml_file(path, located=False)  # nothing points into a request
    if problems:
        raise InvalidError(*problems)
    if len(docs) != 1 or not isinstance(docs[0].value, dict):
        raise InvalidError(Problem("the request must be one YAML mapping", str(path), 1, 1))
    return docs[0]


STATUS_FILE = "status.yaml"
CONTROL_FILE = "workflow-control.yaml"


def read_status(metadata_dir: Path) -> dict[str, Any]:
    """status.yaml as Kratix will read it, refusing what Kratix would reject (exit 2)."""
    path = metadata_dir / STATUS_FILE
    value = read_metadata_file(path)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidError(Problem("status.yaml must be a YAML mapping", str(path), 1, 1))
    problems = status_problems(value)
    if problems:
        raise InvalidError(
            *(
                Problem(p, str(path), hint="an earlier container of this Pipeline wrote it")
                for p in problems
            )
        )
    return value


def status_problems(values: Mapping[str, Any]) -> list[str]:
    """What Kratix would refuse in status values: it fails a pipeline whose status.yaml sets
    `kratix`, and reads `message` as a string."""
    problems = []
    if RESERVED_STATUS_KEY in values:
        problems.append(f'the top-level key "{RESERVED_STATUS_KEY}" is reserved by Kratix')
    message = values.get("message")
    if "message" in values and not isinstance(message, str):
        problems.append(f"message must be a string, not {kind_of(message)}")
    return problems


def merge_status(current: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """Kratix's merge (work-creator MergeStatuses): top-level keys replace, except `conditions`,
    which merge by `type` when both sides are lists."""
    merged = dict(current)
    for key, value in incoming.items():
        existing = merged.get(key)
        if key == "conditions" and isinstance(value, list) and isinstance(existing, list):
            merged[key] = _merge_conditions(existing, value)
        else:
            merged[key] = value
    return merged


def _merge_conditions(existing: list[Any], incoming: list[Any]) -> list[Any]:
    by_type: dict[str, Any] = {}
    for condition in (*existing, *incoming):
        if isinstance(condition, dict) and isinstance(condition.get("type"), str):
            by_type[condition["type"]] = condition  # Kratix keeps typed conditions only
    return list(by_type.values())


def write_status(metadata_dir: Path, values: Mapping[str, Any]) -> Path:
    """Merge `values` into status.yaml, keeping what earlier containers wrote as Kratix reads it."""
    path = metadata_dir / STATUS_FILE
    merged = merge_status(read_status(metadata_dir), values)
    write_atomic(path, kratix_yaml.dump(merged).encode())
    return path


@dataclass(frozen=True)
class WorkflowControl:
    """workflow-control.yaml: what the Pipeline asks of Kratix once every container exited 0."""

    retry_after: str = ""  # a Go duration (`30s`, `1m30s`)
    message: str = ""
    suspend: bool = False

    @property
    def asks(self) -> bool:
        """Kratix suspends or retries the workflow (work-creator IfSuspendOrRetry)."""
        return self.suspend or bool(self.retry_after)

    def describe(self) -> str:
        what = "suspend" if self.suspend else f"retry after {self.retry_after}"
        return what + (f" ({self.message})" if self.message else "")


# Go's time.ParseDuration, which Kratix reads retryAfter with: wider than the runner's own
# grammar (runner.platform.settings), since another container may have written the file.
_GO_DURATION = re.compile(r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|0")


def read_workflow_control(metadata_dir: Path) -> WorkflowControl | None:
    """The file an earlier container (or run) wrote, checked as Kratix will read it."""
    path = metadata_dir / CONTROL_FILE
    value = read_metadata_file(path)
    if value is None:
        return None if not path.exists() else WorkflowControl()
    fields = {"retryAfter": "", "message": "", "suspend": False}  # the types Kratix reads
    problems = []
    if not isinstance(value, dict):
        problems.append("workflow-control.yaml must be a YAML mapping")
        value = {}
    for key, kind in fields.items():
        if key in value and value[key] is not None and not isinstance(value[key], type(kind)):
            problems.append(f"{key} must be {kind_of(kind)}, not {kind_of(value[key])}")
    retry = value.get("retryAfter") or ""
    if isinstance(retry, str) and retry and not _go_duration(retry):
        problems.append(f'retryAfter "{retry}" is not a duration Kratix can read (e.g. 30s, 5m)')
    if problems:
        raise InvalidError(*(Problem(p, str(path)) for p in problems))
    return WorkflowControl(str(retry), str(value.get("message") or ""), bool(value.get("suspend")))


def request_workflow_control(metadata_dir: Path, request: WorkflowControl) -> WorkflowControl:
    """Ask Kratix to retry or suspend, unless the file already asks for it: a request another
    container wrote is never replaced. Returns what the file asks now."""
    existing = read_workflow_control(metadata_dir)
    if existing is not None and existing.asks:
        return existing
    body: dict[str, Any] = {}
    if request.retry_after:
        body["retryAfter"] = request.retry_after
    if request.suspend:
        body["suspend"] = True
    if request.message:
        body["message"] = request.message
    write_atomic(metadata_dir / CONTROL_FILE, kratix_yaml.dump(body).encode())
    return request


def read_metadata_file(path: Path) -> Any:
    """A metadata file's YAML as Kratix reads it; None when absent or empty."""
    if not path.exists():
        return None
    docs, problems = read_yaml_file(
        path, max_bytes=MAX_FILE_BYTES, scalars=kratix_yaml.GO_YAML, located=False
    )
    if problems:
        raise InvalidError(*problems)
    return docs[0].value if docs else None


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_VARIABLE = "RUNNER_SERVICEACCOUNT_DIR"  # for tests and the bench only


def service_account_dir(environ: Mapping[str, str]) -> str:
    """Where the pod's service account (token, ca.crt, namespace) is mounted."""
    return environ.get(SERVICE_ACCOUNT_VARIABLE) or SERVICE_ACCOUNT_DIR


def _go_duration(text: str) -> bool:
    """Whether Go's time.ParseDuration reads it: its syntax, and at most int64 nanoseconds."""
    from runner.platform.settings import parse_duration

    if not _GO_DURATION.fullmatch(text):
        return False
    try:
        parse_duration(text.lstrip("+"))
    except ValueError as exc:
        return "too long" not in str(exc)  # other Go forms our grammar lacks are Go's to read
    return True
