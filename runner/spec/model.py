"""The typed model of a step, built from a schema-valid document."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from runner.settings import parse_duration
from runner.spec.source import Document, PathKey
from runner.value_types import INPUT_TYPES

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


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...] | None = None
    script: str | None = None
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    continue_on_error: bool = False
    stdout: str | None = None
    path: PathKey = ()

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


def state_key(path: str, key: str | None = None) -> str:
    """The key a state file is kept under: its `key:`, else the file's name ("" for none)."""
    return key or PurePosixPath(path).name


@dataclass(frozen=True)
class State:
    store: str | None = None  # None: configmap inside a cluster, local outside
    name: str | None = None
    namespace: str | None = None
    files: tuple[StateFile, ...] = ()
    save: str = "always"
    lock: bool = True
    on_delete: str = "keep"


@dataclass(frozen=True)
class StatusFromFile:
    file: str
    expression: str = "."
    language: str = "query"
    required: bool = False


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
    promise: str | None = None

    def mismatches(self, workflow: str, action: str, promise: str | None) -> list[Mismatch]:
        """Every field of `on` the workflow does not match; [] when the step applies."""
        found = []
        if self.workflow and workflow and self.workflow != workflow:
            found.append(Mismatch("workflow", self.workflow, workflow))
        if action not in self.actions:
            wanted = self.actions[0] if len(self.actions) == 1 else f"[{', '.join(self.actions)}]"
            found.append(Mismatch("action", wanted, action))
        if self.promise and self.promise != promise:
            found.append(Mismatch("promise", self.promise, promise))
        return found

    def matches(self, workflow: str, action: str, promise: str | None) -> bool:
        return not self.mismatches(workflow, action, promise)


@dataclass(frozen=True)
class OutputCopy:
    source: str
    target: str
    path: PathKey = ()  # where the target is written: its `to`, else its `from`


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    file: Path
    document: Document
    trigger: Trigger
    inputs: tuple[Input, ...]
    secrets: tuple[Secret, ...]
    env: dict[str, str]
    workdir: str
    copy_workdir: bool
    state: State
    run: tuple[Command, ...]
    dry_run: tuple[Command, ...] | None
    output: tuple[OutputCopy, ...]
    status: dict[str, str | StatusFromFile]
    timeout: float | None

    @property
    def folder(self) -> Path:
        return self.file.parent

    @property
    def is_delete(self) -> bool:
        return "delete" in self.trigger.actions


def build_step(doc: Document, file: Path) -> Step:
    """The typed Step of a document that passed the schema."""
    value = doc.value
    spec = value["spec"]
    on = spec.get("on") or {}
    action = on.get("action", ["configure"])
    return Step(
        name=value["metadata"]["name"],
        description=value["metadata"].get("description", ""),
        file=file,
        document=doc,
        trigger=Trigger(
            workflow=on.get("workflow"),
            actions=tuple([action] if isinstance(action, str) else action),
            promise=on.get("promise"),
        ),
        inputs=tuple(_input(name, raw) for name, raw in (spec.get("inputs") or {}).items()),
        secrets=tuple(
            Secret(
                name,
                raw.get("env"),
                raw.get("file"),
                raw.get("required", True),
                raw.get("mask", True),
                raw.get("allowEmpty", False),
            )
            for name, raw in (spec.get("secrets") or {}).items()
        ),
        env=_env(spec.get("env")),
        workdir=spec.get("workdir", "."),
        copy_workdir=spec.get("copyWorkdir", False),
        state=_state(spec.get("state")),
        run=_commands(spec["run"], ("spec", "run")),
        dry_run=_commands(spec["dryRun"], ("spec", "dryRun")) if "dryRun" in spec else None,
        output=tuple(
            OutputCopy(
                o["from"],
                o.get("to", o["from"]),
                ("spec", "output", i, "to" if "to" in o else "from"),
            )
            for i, o in enumerate(spec.get("output") or ())
        ),
        status={k: _status_value(v) for k, v in (spec.get("status") or {}).items()},
        timeout=optional_duration(spec.get("timeout")),
    )


def _input(name: str, raw: dict[str, Any]) -> Input:
    language = "query" if "query" in raw else "jmespath"
    default = raw.get("default", MISSING)
    return Input(
        name=name,
        expression=raw[language],
        language=language,
        default=default,
        required=raw.get("required", default is MISSING),
        type=raw.get("type"),
        enum=tuple(raw["enum"]) if "enum" in raw else None,
        pattern=raw.get("pattern"),
        path=("spec", "inputs", name),
    )


def _env(raw: dict[str, Any] | None) -> dict[str, str]:
    return {k: _scalar_text(v) for k, v in (raw or {}).items()}


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _state(raw: dict[str, Any] | None) -> State:
    if not raw:
        return State(store="none")
    return State(
        store=raw.get("store"),
        name=raw.get("name"),
        namespace=raw.get("namespace"),
        files=tuple(
            StateFile(f["path"], state_key(f["path"], f.get("key"))) for f in raw.get("files", ())
        ),
        save=raw.get("save", "always"),
        lock=raw.get("lock", True),
        on_delete=raw.get("onDelete", "keep"),
    )


def _commands(raw: list[Any], path: PathKey) -> tuple[Command, ...]:
    commands = []
    for i, item in enumerate(raw):
        if isinstance(item, list):
            commands.append(Command(argv=tuple(_scalar_text(a) for a in item), path=(*path, i)))
            continue
        commands.append(
            Command(
                argv=tuple(_scalar_text(a) for a in item["argv"]) if "argv" in item else None,
                script=item.get("script"),
                workdir=item.get("workdir"),
                env=_env(item.get("env")),
                timeout=optional_duration(item.get("timeout")),
                continue_on_error=item.get("continueOnError", False),
                stdout=item.get("stdout"),
                path=(*path, i),
            )
        )
    return tuple(commands)


def _status_value(raw: Any) -> str | StatusFromFile:
    if isinstance(raw, dict):
        language = "jmespath" if "jmespath" in raw else "query"
        return StatusFromFile(
            raw["file"], raw.get(language, "."), language, raw.get("required", False)
        )
    return _scalar_text(raw)


def _show(value: Any) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
