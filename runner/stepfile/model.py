"""The typed model of a step (`runner/stepfile/build.py` makes one from a schema-valid document)."""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner.base.source import Document, PathKey
from runner.base.value_types import INPUT_TYPES
from runner.platform.settings import parse_duration
from runner.stepfile.sensitivity import Taint

MISSING: Any = object()  # an input with no default (None is a valid default)


def optional_duration(value: str | float | None) -> float | None:
    """`10m` -> 600.0; numbers are seconds. The schema has checked the syntax."""
    return None if value is None else parse_duration(value)


@dataclass(frozen=True)
class Input:
    name: str
    expression: str
    language: str  # "query" (yq-style) or "jmespath"
    default: Any = MISSING
    required: bool = True
    type: str | None = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    path: PathKey = ()

    def check(self, value: Any) -> str | None:
        """Why `value` breaks this input's type/enum/pattern, or None when it fits."""
        if self.type:
            allowed = INPUT_TYPES[self.type]
            # bool is an int in Python; JSON Schema keeps them apart.
            is_bool = isinstance(value, bool)
            if not isinstance(value, allowed) or (is_bool and self.type != "boolean"):
                return f"expected {self.type}, found {_show(value)}"
        if self.enum is not None and value not in self.enum:
            options = ", ".join(_show(v) for v in self.enum)
            return f"{_show(value)} is not one of {options}"
        if self.pattern is not None:
            if not isinstance(value, str):
                return f"pattern {self.pattern!r} needs a string, found {_show(value)}"
            if not re.search(self.pattern, value):
                return f"{_show(value)} does not match pattern {self.pattern!r}"
        return None


@dataclass(frozen=True)
class Secret:
    name: str
    env: str | None = None
    file: str | None = None
    required: bool = True
    mask: bool = True
    allow_empty: bool = False
    secret_key_ref: SecretKeyRef | None = None  # for `runner pipeline`; not read by the runner
    generate: Generate | None = None  # made on the first run, then kept in the step's state

    @property
    def state_key(self) -> str:
        """The key of the step's state record a generated secret is kept under."""
        return GENERATED_PREFIX + self.name


# The state keys of generated secrets: `generated-secret.NAME`. No state file may use the prefix.
GENERATED_PREFIX = "generated-secret."
# What `generate.charset` draws from by default: letters and digits, safe in URLs and shells.
DEFAULT_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
GENERATE_LENGTHS = (8, 1024)  # the bounds of `generate.length`


def charset_problem(charset: str) -> str | None:
    """Why `charset` can't be drawn from (said whole), or None when it can."""
    odd = sorted({c for c in charset if not "!" <= c <= "~"})
    if odd:
        shown = ", ".join(repr(c) for c in odd[:3])
        return (
            f"charset holds {shown}: only printable ASCII characters other than space can be "
            "drawn (a password goes through shells, URLs and config files)"
        )
    if len(set(charset)) < 2:
        return "charset has fewer than 2 different characters: every value would be the same"
    return None


@dataclass(frozen=True)
class Generate:
    """`secrets.NAME.generate`: a random value of `length` characters drawn from `charset`."""

    length: int
    charset: str = DEFAULT_CHARSET


@dataclass(frozen=True)
class SecretKeyRef:
    """The key of a Kubernetes Secret a Pipeline container's env var is taken from."""

    name: str
    key: str


@dataclass(frozen=True)
class Retry:
    """How often a failing command is tried, and how long to wait between tries."""

    attempts: int = 1
    delay: float = 1.0
    backoff: float = 1.0
    max_delay: float | None = None
    on_exit_codes: tuple[int, ...] | None = None  # None: any failure

    def retries(self, exit_code: int) -> bool:
        return self.on_exit_codes is None or exit_code in self.on_exit_codes

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt` (2 for the first retry)."""
        wait = self.delay * self.backoff ** max(attempt - 2, 0)
        return wait if self.max_delay is None else min(wait, self.max_delay)


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...] | None = None
    script: str | None = None
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    continue_on_error: bool = False
    stdout: str | None = None
    condition: str | None = None  # `if:`
    retry: Retry | None = None  # None: the step's, else one try
    path: PathKey = ()
    stdin: str | None = None  # a text template; may read secrets; never logged
    echo: bool = True  # False: stdout is not logged (`echo: false`, or it feeds a sensitive output)

    def describe(self) -> str:
        """The command for logs: argv quoted as a shell would read it, or a script's first line."""
        if self.argv is not None:
            return shlex.join(self.argv)
        first = (self.script or "").strip().splitlines()
        return "script: " + (first[0] + (" ..." if len(first) > 1 else "") if first else "")


@dataclass(frozen=True)
class StateFile:
    path: str
    key: str


def input_variable(name: str) -> str:
    """The environment variable a script reads an input from: `INPUT_<NAME>`, upper-cased,
    `-` -> `_`."""
    return "INPUT_" + name.upper().replace("-", "_")


def value_variable(name: str) -> str:
    """The environment variable a command reads a value from: `VALUE_<NAME>`, as inputs."""
    return "VALUE_" + name.upper().replace("-", "_")


def state_key(path: str, key: str | None = None) -> str:
    """The key a state file is kept under: its `key:`, else the file's name ("" for none)."""
    return key or PurePosixPath(path).name


@dataclass(frozen=True)
class KeySource:
    """Where a state encryption key is read: an environment variable or a file."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env is not None else f"file {self.file}"


@dataclass(frozen=True)
class Encryption:
    """`state.encryption`: the key saves are written with, older keys to read, migration."""

    key: KeySource
    fallback_keys: tuple[KeySource, ...] = ()
    allow_plaintext: bool = False


@dataclass(frozen=True)
class State:
    store: str | None = None  # None: configmap inside a cluster, local outside
    name: str | None = None
    namespace: str | None = None
    files: tuple[StateFile, ...] = ()
    save: str = "always"
    lock: bool = True
    on_delete: str = "keep"
    bucket: str | None = None  # the s3 store's bucket (a template)
    encryption: Encryption | None = None


@dataclass(frozen=True)
class StatusFromFile:
    file: str
    expression: str = "."
    language: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Value:
    """A `values:` entry: a lookup (`from` + `map`) or an expression (`jmespath`)."""

    name: str
    source: str | None = None  # `from`: a dotted name, e.g. "inputs.size"
    mapping: dict[str, Any] | None = None
    default: Any = MISSING
    expression: str | None = None
    path: PathKey = ()


@dataclass(frozen=True)
class Output:
    """An `outputs:` entry: read from a file the commands wrote, or an expression."""

    name: str
    file: str | None = None
    expression: str | None = None  # a query into the file, or (no file) over the context
    language: str = "query"  # "query" | "jmespath"
    sensitive: bool = False
    required: bool = False  # a missing file (or nothing found) fails the step
    path: PathKey = ()


@dataclass(frozen=True)
class Manifest:
    """A `manifests:` entry: one file of documents under the output folder."""

    target: str  # `path:`, a template
    condition: str | None = None
    documents: tuple[Any, ...] | None = None  # `document`/`documents`, templates unrendered
    base: str | None = None  # `from:`, relative to the step file; a template may pick the file
    set: tuple[tuple[str, Any], ...] = ()
    path: PathKey = ()
    file: str | None = None  # `file:`, a YAML file the commands wrote, relative to the workdir


@dataclass(frozen=True)
class Destination:
    match_labels: dict[str, str]
    directory: str | None = None
    path: PathKey = ()


@dataclass(frozen=True)
class WaitFor:
    condition: str
    retry_after: float = 30.0
    message: str | None = None


@dataclass(frozen=True)
class Suspend:
    condition: str | None = None  # None: always
    message: str | None = None


# What Kratix sets in KRATIX_WORKFLOW_ACTION and KRATIX_WORKFLOW_TYPE (api/v1alpha1 const.go).
WORKFLOW_ACTIONS = ("configure", "delete")
WORKFLOW_TYPES = ("resource", "promise")
_TRIGGER_VARIABLES = {
    "workflow": "KRATIX_WORKFLOW_TYPE",
    "action": "KRATIX_WORKFLOW_ACTION",
    "promise": "KRATIX_PROMISE_NAME",
}


@dataclass(frozen=True)
class Mismatch:
    """Why a step's `on` does not match the workflow: the field, what it wants, what it got."""

    field: str  # workflow | action | promise
    wanted: str
    actual: str | None

    def __str__(self) -> str:
        actual = self.actual if self.actual else "not set"
        return f"on.{self.field} is {self.wanted} but {_TRIGGER_VARIABLES[self.field]} is {actual}"


@dataclass(frozen=True)
class Trigger:
    """A step's `on`. Omitted, it matches the configure action of any workflow, never delete:
    a delete step says `action: delete`."""

    workflow: str | None = None
    actions: tuple[str, ...] = ("configure",)
    promise: tuple[str, ...] = ()  # empty: any Promise

    def mismatches(self, workflow: str, action: str, promise: str | None) -> list[Mismatch]:
        """Every field of `on` the workflow does not match; [] when the step applies."""
        found = []
        if self.workflow and workflow and self.workflow != workflow:
            found.append(Mismatch("workflow", self.workflow, workflow))
        if action not in self.actions:
            found.append(Mismatch("action", _one_or_list(self.actions), action))
        if self.promise and promise not in self.promise:
            found.append(Mismatch("promise", _one_or_list(self.promise), promise))
        return found

    def matches(self, workflow: str, action: str, promise: str | None) -> bool:
        return not self.mismatches(workflow, action, promise)


def _one_or_list(names: tuple[str, ...]) -> str:
    """`a` for one name, `[a, b]` for several: how `on` reads in a message."""
    return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


@dataclass(frozen=True)
class OutputCopy:
    source: str  # a template may pick the file (runner.language.source_paths)
    target: str
    path: PathKey = ()  # where the target is written: its `to`, else its `from`
    condition: str | None = None  # `if:`, decided after the commands


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    file: Path
    document: Document
    trigger: Trigger
    inputs: tuple[Input, ...]
    values: tuple[Value, ...]
    condition: str | None
    secrets: tuple[Secret, ...]
    env: dict[str, str]
    workdir: str
    copy_workdir: bool
    state: State
    run: tuple[Command, ...]
    dry_run: tuple[Command, ...] | None
    output: tuple[OutputCopy, ...]
    outputs: tuple[Output, ...]
    manifests: tuple[Manifest, ...]
    destinations: tuple[Destination, ...]
    status: dict[str, Any]  # a literal or template (typed), or a StatusFromFile
    wait_for: WaitFor | None
    suspend: Suspend | None
    timeout: float | None
    templates: tuple[str, ...] = ()  # the StepTemplates it is built on, nearest first
    taint: Taint = field(default_factory=Taint)  # which values and outputs are sensitive

    @property
    def folder(self) -> Path:
        return self.file.parent

    @property
    def is_delete(self) -> bool:
        return "delete" in self.trigger.actions

    @property
    def keeps_state(self) -> bool:
        """Whether the step has a state to keep: files, or generated secrets (store not none)."""
        return self.state.store != "none" and bool(self.state.files or self.generated)

    @property
    def generated(self) -> tuple[Secret, ...]:
        """The secrets made on the first run and kept in the step's state."""
        return tuple(s for s in self.secrets if s.generate is not None)

    def sensitive_files(self) -> frozenset[str]:
        """The files (relative to the workdir, normalised) that a sensitive output reads."""
        return frozenset(
            posixpath.normpath(o.file) for o in self.outputs if o.sensitive and o.file is not None
        )


def feeds_sensitive(command: Command, sensitive_files: frozenset[str]) -> bool:
    """Whether the command's `stdout:` file is one a sensitive output reads.

    A templated command `workdir` is only known at run time: then the file's name decides,
    erring on the side of not echoing.
    """
    if command.stdout is None or not sensitive_files:
        return False
    folder = command.workdir or "."
    if "${{" in folder:
        name = posixpath.basename(command.stdout)
        return any(posixpath.basename(f) == name for f in sensitive_files)
    return posixpath.normpath(posixpath.join(folder, command.stdout)) in sensitive_files


def _show(value: Any) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
