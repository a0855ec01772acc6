"""The published JSON Schema: what `runner schema` prints, valid, documented, and usable by
other tools (check-jsonschema, editors) with the same verdicts as `runner validate`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "step.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
VALID = REPO / "tests" / "data" / "validate" / "valid"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def properties(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property schema anywhere in the schema, with its JSON pointer."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{path}/properties/{name}", sub
        for key, sub in node.items():
            yield from properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from properties(sub, f"{path}/{i}")


def resolved(sub: dict[str, Any]) -> dict[str, Any]:
    """A property schema with its `$ref` (always into $defs here) merged in."""
    if "$ref" not in sub:
        return sub
    return {**SCHEMA["$defs"][sub["$ref"].rsplit("/", 1)[1]], **sub}


def check(sub: dict[str, Any], value: Any) -> list[str]:
    """Why `value` breaks the property schema `sub` (with the whole schema's $defs)."""
    schema = {"$defs": SCHEMA["$defs"], **{k: v for k, v in sub.items() if k != "examples"}}
    return [e.message for e in Draft202012Validator(schema).iter_errors(value)]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_runner_schema_prints_the_published_schema():
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == SCHEMA
    assert result.stdout == SCHEMA_FILE.read_text()


def test_the_published_schema_is_the_packaged_one():
    assert SCHEMA_FILE.is_symlink()
    assert SCHEMA_FILE.resolve() == (REPO / "runner" / "stepfile" / "step.schema.json").resolve()


def test_the_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def test_every_property_has_a_description():
    missing = [path for path, sub in properties(SCHEMA) if not sub.get("description")]
    assert not missing, missing


def test_every_property_offers_editors_something_to_complete():
    missing = [
        path for path, sub in properties(SCHEMA)
        if not any(k in resolved(sub) for k in ("examples", "default", "enum", "const"))
    ]  # fmt: skip
    assert not missing, missing


def test_every_example_and_default_is_valid():
    bad = []
    for path, sub in properties(SCHEMA):
        full = resolved(sub)
        for example in full.get("examples", []):
            bad += [f"{path} example {example!r}: {m}" for m in check(full, example)]
        if "default" in full:
            bad += [f"{path} default: {m}" for m in check(full, full["default"])]
    assert not bad, "\n".join(bad)


def test_the_shipped_steps_pass_the_schema_alone():
    # Read as YAML 1.2 (as check-jsonschema and editors do): PyYAML's safe_load is YAML 1.1,
    # where the key `on:` is the boolean True.
    from runner.base.source import read_yaml_file

    validator = Draft202012Validator(SCHEMA)
    for path in sorted((REPO / "steps.d").glob("*.yaml")):
        docs, problems = read_yaml_file(path)
        assert len(docs) == 1 and not problems
        errors = [e.message for e in validator.iter_errors(docs[0].value)]
        assert not errors, f"{path}: {errors}"


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    if not CHECK_JSONSCHEMA.exists():
        pytest.skip("check-jsonschema is not installed")
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA_FILE), *map(str, files)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def test_check_jsonschema_accepts_the_shipped_steps():
    files = sorted((REPO / "steps.d").glob("*.yaml"))
    assert files
    result = _check_jsonschema(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_accepts_the_fixture_steps():
    # check-jsonschema reads one document per file: the single-document fixtures.
    files = [VALID / "10-everything.yaml", VALID / "20-minimal.yml"]
    result = _check_jsonschema(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_rejects_what_the_schema_part_of_validate_rejects():
    result = _check_jsonschema(REPO / "tests" / "data" / "validate" / "invalid" / "10-schema.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
