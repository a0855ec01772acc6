"""A typed Step from a document that passed the schema: defaults filled in, names normalised.

The schema has checked every shape, so this reads fields without re-checking them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.base.source import Document, PathKey
from runner.platform.settings import parse_duration
from runner.stepfile.model import (
    DEFAULT_CHARSET,
    MISSING,
    Command,
    Destination,
    Encryption,
    Generate,
    Input,
    KeySource,
    Manifest,
    Output,
    OutputCopy,
    Retry,
    Secret,
    SecretKeyRef,
    State,
    StateFile,
    StatusFromFile,
    Step,
    Suspend,
    Trigger,
    Value,
    WaitFor,
    optional_duration,
    state_key,
)
from runner.stepfile.sensitivity import step_taint


def build_step(doc: Document, file: Path) -> Step:
    """The typed Step of a document that passed the schema."""
    value = doc.value
    spec = value["spec"]
    retry = _retry(spec.get("retry"))
    return Step(
        name=value["metadata"]["name"],
        description=value["metadata"].get("description", ""),
        file=file,
        document=doc,
        trigger=build_trigger(spec.get("on")),
        inputs=tuple(_input(name, raw) for name, raw in (spec.get("inputs") or {}).items()),
        values=tuple(_value(name, raw) for name, raw in (spec.get("values") or {}).items()),
        condition=spec.get("if"),
        secrets=tuple(_secret(name, raw) for name, raw in (spec.get("secrets") or {}).items()),
        env=_env(spec.get("env")),
        workdir=spec.get("workdir", "."),
        copy_workdir=spec.get("copyWorkdir", False),
        state=_state(spec.get("state")),
        run=_commands(spec.get("run") or [], ("spec", "run"), retry),
        dry_run=_commands(spec["dryRun"], ("spec", "dryRun"), retry) if "dryRun" in spec else None,
        output=tuple(
            OutputCopy(
                o["from"],
                o.get("to", o["from"]),
                ("spec", "output", i, "to" if "to" in o else "from"),
                o.get("if"),
            )
            for i, o in enumerate(spec.get("output") or ())
        ),
        outputs=tuple(_output(name, raw) for name, raw in (spec.get("outputs") or {}).items()),
        manifests=tuple(_manifest(i, raw) for i, raw in enumerate(spec.get("manifests") or ())),
        destinations=tuple(
            Destination(
                {k: _scalar_text(v) for k, v in raw["matchLabels"].items()},
                raw.get("directory"),
                ("spec", "destinations", i),
            )
            for i, raw in enumerate(spec.get("destinations") or ())
        ),
        status={k: _status_value(v) for k, v in (spec.get("status") or {}).items()},
        wait_for=_wait_for(spec.get("waitFor")),
        suspend=Suspend(spec["suspend"].get("if"), spec["suspend"].get("message"))
        if "suspend" in spec
        else None,
        timeout=optional_duration(spec.get("timeout")),
        taint=step_taint(spec),
    )


def build_trigger(on: dict[str, Any] | None) -> Trigger:
    """A step's `on`, as it passed the schema (also read from the stamp's index)."""
    on = on or {}
    action = on.get("action", ["configure"])
    return Trigger(
        workflow=on.get("workflow"),
        actions=tuple([action] if isinstance(action, str) else action),
        promise=_names(on.get("promise")),
    )


def _names(raw: str | list[str] | None) -> tuple[str, ...]:
    """`on.promise`: one name or a list; omitted (or empty) is any Promise."""
    if not raw:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(raw)


def _secret(name: str, raw: dict[str, Any]) -> Secret:
    ref = raw.get("secretKeyRef")
    return Secret(
        name,
        raw.get("env"),
        raw.get("file"),
        raw.get("required", True),
        raw.get("mask", True),
        raw.get("allowEmpty", False),
        SecretKeyRef(ref["name"], ref["key"]) if ref else None,
        _generate(raw.get("generate")),
    )


def _generate(raw: dict[str, Any] | None) -> Generate | None:
    if raw is None:
        return None
    return Generate(raw["length"], raw.get("charset", DEFAULT_CHARSET))


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
        bucket=raw.get("bucket"),
        encryption=_encryption(raw.get("encryption")),
    )


def _encryption(raw: dict[str, Any] | None) -> Encryption | None:
    if not raw:
        return None

    def source(item: dict[str, Any]) -> KeySource:
        return KeySource(env=item.get("env"), file=item.get("file"))

    return Encryption(
        key=source(raw["key"]),
        fallback_keys=tuple(source(k) for k in raw.get("fallbackKeys", ())),
        allow_plaintext=bool(raw.get("allowPlaintext", False)),
    )


def _commands(raw: list[Any], path: PathKey, retry: Retry | None) -> tuple[Command, ...]:
    commands = []
    for i, item in enumerate(raw):
        if isinstance(item, list):
            argv = tuple(_scalar_text(a) for a in item)
            commands.append(Command(argv=argv, retry=retry, path=(*path, i)))
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
                condition=item.get("if"),
                retry=_retry(item["retry"]) if "retry" in item else retry,
                path=(*path, i),
                stdin=_scalar_text(item["stdin"]) if "stdin" in item else None,
                echo=item.get("echo", True),
            )
        )
    return tuple(commands)


def _retry(raw: dict[str, Any] | None) -> Retry | None:
    if raw is None:
        return None
    codes = raw.get("onExitCodes")
    return Retry(
        attempts=raw.get("attempts", 1),
        delay=parse_duration(raw.get("delay", "1s")),
        backoff=float(raw.get("backoff", 1)),
        max_delay=optional_duration(raw.get("maxDelay")),
        on_exit_codes=tuple(codes) if codes is not None else None,
    )


def _value(name: str, raw: dict[str, Any]) -> Value:
    return Value(
        name=name,
        source=raw.get("from"),
        mapping={str(k): v for k, v in raw["map"].items()} if "map" in raw else None,
        default=raw.get("default", MISSING),
        expression=raw.get("jmespath"),
        path=("spec", "values", name),
    )


def _output(name: str, raw: dict[str, Any]) -> Output:
    language = "jmespath" if "jmespath" in raw else "query"
    return Output(
        name=name,
        file=raw.get("file"),
        expression=raw.get(language),
        language=language,
        sensitive=raw.get("sensitive", False),
        required=raw.get("required", False),
        path=("spec", "outputs", name),
    )


def _manifest(index: int, raw: dict[str, Any]) -> Manifest:
    documents = raw.get("documents", [raw["document"]] if "document" in raw else None)
    return Manifest(
        target=raw["path"],
        condition=raw.get("if"),
        documents=tuple(documents) if documents is not None else None,
        base=raw.get("from"),
        set=tuple((raw.get("set") or {}).items()),
        path=("spec", "manifests", index),
        file=raw.get("file"),
    )


def _wait_for(raw: dict[str, Any] | None) -> WaitFor | None:
    if raw is None:
        return None
    return WaitFor(
        condition=raw["condition"],
        retry_after=parse_duration(raw.get("retryAfter", "30s")),
        message=raw.get("message"),
    )


def _status_value(raw: Any) -> Any:
    """A value read from a file (a mapping with `file`), or a literal or nested data whose
    strings are templates: kept typed (`true` stays a boolean)."""
    if isinstance(raw, dict) and "file" in raw:
        language = "jmespath" if "jmespath" in raw else "query"
        return StatusFromFile(
            raw["file"], raw.get(language, "."), language, raw.get("required", False)
        )
    return raw
