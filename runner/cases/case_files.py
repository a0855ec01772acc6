"""The files of a case folder: their names, and reading and checking case.yaml, env and steps.

Every reader collects its problems rather than raising, so one `runner test` reports everything
wrong with every case folder.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document, read_yaml_file
from runner.base.words import closest, display

CASE_FILE = "case.yaml"
ENV_FILE = "env"
STEPS_FILE = "steps"
REQUEST = Path("input") / "object.yaml"
TREES = ("output", "metadata")  # the folders a run produces and a case expects

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STEP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|nan", re.I)
_MAX_SECONDS = 9223372036  # as step files' durations (Go's longest, about 292 years)
_CASE_KEYS = {
    "description": "what the case checks",
    "steps": "the steps to run (default: every step whose `on` matches)",
    "stepsDir": "the steps folder, relative to the case folder",
    "action": "KRATIX_WORKFLOW_ACTION: configure (default) or delete",
    "workflow": "KRATIX_WORKFLOW_TYPE: resource (default) or promise",
    "promise": "KRATIX_PROMISE_NAME",
    "pipeline": "KRATIX_PIPELINE_NAME",
    "expect": "the expected exit code and output: {exitCode, stdoutContains, stderrContains}",
    "secrets": "more env file variables to mask",
    "ignore": "fields left out of the comparison, by file: {metadata/status.yaml: .lastRun}",
    "timeout": "longest the case may run (e.g. 30s, 2m)",
    "stepOutputs": "outputs earlier containers recorded: {STEP: {NAME: value}}",
    "sensitiveOutputs": "those of stepOutputs to mask: {STEP: [NAME]}",
}
_EXPECT_KEYS = ("exitCode", "stdoutContains", "stderrContains")
_CHOICES = {"action": ("configure", "delete"), "workflow": ("resource", "promise")}


# -- case.yaml -----------------------------------------------------------------------------------
def read_case_yaml(path: Path) -> tuple[Document | None, list[Problem]]:
    """case.yaml's document (None when the file is empty), with every problem of its options."""
    docs, problems = read_yaml_file(path, display(path))
    if not docs:
        return None, problems
    doc = docs[0]
    if len(docs) > 1:
        problems.append(doc.problem((), f"{CASE_FILE} holds one YAML document"))
    if isinstance(doc.value, dict):
        problems += _check_options(doc)
    elif doc.value is not None:
        problems.append(doc.problem((), f"{CASE_FILE} must be a mapping of options"))
    return doc, problems


def _check_options(doc: Document) -> list[Problem]:
    """case.yaml's keys and types, with `did you mean` for typos."""
    value: dict[str, Any] = doc.value
    problems = _unknown_keys(doc, (), value, _CASE_KEYS, "option")
    problems += _check_names(doc, "steps", STEP_NAME, "a step name")
    problems += _check_names(doc, "secrets", _ENV_NAME, "an environment variable name")
    for key in ("description", "stepsDir", "promise", "pipeline"):
        if key in value and not isinstance(value[key], str):
            problems.append(doc.problem((key,), "expected a string"))
    for key, allowed in _CHOICES.items():
        if key in value and value[key] not in allowed:
            problems.append(
                doc.problem((key,), f"expected {' or '.join(allowed)}, found {value[key]!r}")
            )
    if "timeout" in value and seconds(value["timeout"]) is None:
        problems.append(doc.problem(("timeout",), "expected a duration like 30s or 2m, or seconds"))
    if value.get("expect") is not None:
        problems += _check_expect(doc)
    return problems


def _check_expect(doc: Document) -> list[Problem]:
    expect = doc.value["expect"]
    if not isinstance(expect, dict):
        message = "expected a mapping: {exitCode, stdoutContains, stderrContains}"
        return [doc.problem(("expect",), message)]
    problems = _unknown_keys(doc, ("expect",), expect, _EXPECT_KEYS, "expectation")
    code = expect.get("exitCode", 0)
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
        problems.append(doc.problem(("expect", "exitCode"), "expected an exit code, 0 to 255"))
    for key in ("stdoutContains", "stderrContains"):
        if not all(isinstance(s, str) for s in as_list(expect.get(key))):
            problems.append(doc.problem(("expect", key), "expected a string or a list of strings"))
    return problems


def _unknown_keys(
    doc: Document,
    where: tuple[str, ...],
    mapping: dict[str, Any],
    known: dict[str, str] | tuple[str, ...],
    noun: str,
) -> list[Problem]:
    """A problem for each key of `mapping` (found at `where`) that is not `known`."""
    problems = []
    for key in mapping:
        if key not in known:
            guess = closest(key, set(known))
            hint = f'did you mean "{guess}"?' if guess else f"{noun}s: " + ", ".join(known)
            problems.append(doc.problem((*where, key), f'unknown {noun} "{key}"', hint=hint))
    return problems


def _check_names(doc: Document, key: str, pattern: re.Pattern[str], what: str) -> list[Problem]:
    """A string or a list of strings, each matching `pattern`."""
    if key not in doc.value:
        return []
    items = doc.value[key]
    listed = isinstance(items, list)
    problems = []
    for i, item in enumerate(items if listed else [items]):
        path = (key, i) if listed else (key,)
        if not isinstance(item, str):
            problems.append(doc.problem(path, "expected a string or a list of them"))
        elif not pattern.match(item):
            problems.append(doc.problem(path, f'"{item}" is not {what}'))
    return problems


def as_list(value: Any) -> list[Any]:
    """A case.yaml value that may be one item or a list of them, as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def seconds(value: Any) -> float | None:
    """A positive number of seconds or a duration (`500ms`, `30s`, `2m`, `1h`); else None."""
    if value is None or isinstance(value, bool):
        return None
    # A number, or its text (`--timeout 1e999`, `--timeout nan`): checked below like any.
    if isinstance(value, (int, float)) or _NUMBER.fullmatch(str(value).strip()):
        found = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            return None
        found = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    # 1e999 reads as infinity, which no timer takes; nor a NaN
    return found if 0 < found <= _MAX_SECONDS else None


def seconds_argument(text: str) -> float:
    """`--timeout`'s argparse type: what case.yaml's `timeout` takes."""
    found = seconds(text)
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid: expected a duration like 30s or 2m, or seconds"
        )
    return found


# -- env and steps -------------------------------------------------------------------------------
def parse_env_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """KEY=VALUE lines; `#` starts a comment line; `export ` is allowed; one pair of matching
    quotes around a value is removed. Nothing is expanded: `$` in a password stays `$`."""
    text, problems = _read_text(path)
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            # Never quote the line: it may hold a secret.
            problems.append(
                Problem("expected KEY=VALUE (KEY: letters, digits and _)", display(path), number, 1)
            )
            continue
        if "\0" in value:  # no environment variable can hold one
            column = line.index("\0") + 1
            problems.append(Problem("a NUL byte in a value", display(path), number, column))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env, problems


def parse_steps_file(path: Path) -> tuple[list[str], list[Problem]]:
    """Step names, one a line; `#` starts a comment."""
    text, problems = _read_text(path)
    names: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not STEP_NAME.match(item):
            problems.append(Problem(f'"{item}" is not a step name', display(path), number, 1))
        names.append(item)
    return names, problems


def _read_text(path: Path) -> tuple[str, list[Problem]]:
    """The file's text; "" and a problem when it cannot be read or is not UTF-8."""
    try:
        return path.read_text("utf-8"), []
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        return "", [Problem(f"cannot read: {reason}", display(path))]
