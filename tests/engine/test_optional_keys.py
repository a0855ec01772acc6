"""A secret the step may do without, and a fallback state key that is not there: `runner
pipeline` makes a `required: false` secret's env optional (a missing Secret must not stop the
pod), and a run goes on without a fallback key that is not set, saying so; only a state sealed
with that key then fails, exit 3, naming its key id. In process: real files, the local store."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from runner.base.errors import InvalidError, StoreError
from runner.platform.log import Logger
from runner.state.encryption import key_id
from runner.stepfile.loader import load_steps
from runner.verbs.pipeline import pipeline
from tests.engine.world import open_session, write_steps

KEY = base64.b64encode(b"N" * 32).decode()
OLD_KEY = base64.b64encode(b"O" * 32).decode()
ROTATING = """
secrets:
  STATE_KEY: {env: STATE_KEY, secretKeyRef: {name: state-key, key: key}}
  STATE_KEY_OLD: {env: STATE_KEY_OLD, secretKeyRef: {name: state-key-old, key: key}, required: false}
state:
  name: counter
  files: [{path: count.txt, key: count}]
  encryption:
    key: {env: STATE_KEY}
    fallbackKeys: [{env: STATE_KEY_OLD}, {file: FOLDER/old.key}]
workdir: ../work
run:
  - script: |
      n=$(cat count.txt 2>/dev/null || echo 0)
      echo $((n + 1)) > count.txt
"""


KEYS_ONLY = ROTATING.split("state:", 1)[1].join(["state:", ""])  # no secrets: keys alone


def _steps(tmp: Path, body: str) -> Path:
    return write_steps(tmp, {"10-counter": body.replace("FOLDER", str(tmp))})


def _run(tmp: Path, body: str, **environ: str) -> str:
    """Run the step once; what it logged."""
    stream = io.StringIO()
    log = Logger(stream=stream, out=io.StringIO())
    open_session(tmp, {"10-counter": body.replace("FOLDER", str(tmp))}, log=log, **environ).run()
    return stream.getvalue()


def test_a_secret_that_is_not_required_is_an_optional_secret_key_ref(tmp_path: Path) -> None:
    loaded = load_steps([_steps(tmp_path, ROTATING)])
    log = Logger(stream=io.StringIO(), out=io.StringIO())
    [container] = pipeline(loaded.steps, "img:1", "p", log)["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert refs["STATE_KEY"] == {"name": "state-key", "key": "key"}  # required: no `optional`
    assert refs["STATE_KEY_OLD"] == {"name": "state-key-old", "key": "key", "optional": True}


def test_one_variable_read_by_a_required_secret_too_is_not_optional(tmp_path: Path) -> None:
    body = """
    secrets:
      A: {env: SHARED, secretKeyRef: {name: s, key: k}, required: false}
      B: {env: SHARED, secretKeyRef: {name: s, key: k}}
    run: [[true]]
    """
    loaded = load_steps([_steps(tmp_path, body)])
    log = Logger(stream=io.StringIO(), out=io.StringIO())
    [container] = pipeline(loaded.steps, "img:1", "p", log)["spec"]["containers"]
    assert container["env"] == [
        {"name": "SHARED", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]


def test_a_fallback_key_that_is_not_there_is_a_warning_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    logged = _run(tmp_path, ROTATING, STATE_KEY=KEY)  # no STATE_KEY_OLD, no old.key file
    assert "state encryption fallback key: environment variable STATE_KEY_OLD is not set" in logged
    assert f"file {tmp_path}/old.key does not exist" in logged
    assert "saved state" in logged and KEY not in logged
    logged = _run(tmp_path, ROTATING, STATE_KEY=KEY, STATE_KEY_OLD="")  # empty: not there either
    assert "environment variable STATE_KEY_OLD is empty" in logged and "saved state" in logged


def test_a_state_sealed_with_the_absent_fallback_key_is_exit_3_naming_its_id(
    tmp_path: Path,
) -> None:
    _run(tmp_path, ROTATING, STATE_KEY=OLD_KEY)  # sealed with what becomes the old key
    with pytest.raises(StoreError) as info:
        _run(tmp_path, ROTATING, STATE_KEY=KEY)
    assert f"key id {key_id(b'O' * 32).hex()}" in str(info.value)
    assert "add that key to fallbackKeys" in str(info.value)
    logged = _run(tmp_path, ROTATING, STATE_KEY=KEY, STATE_KEY_OLD=OLD_KEY)  # set: it opens
    assert "saved state" in logged and "STATE_KEY_OLD is not set" not in logged


def test_the_write_key_stays_required_and_a_bad_fallback_is_exit_2(tmp_path: Path) -> None:
    with pytest.raises(InvalidError) as info:
        _run(tmp_path, KEYS_ONLY, STATE_KEY_OLD=OLD_KEY)
    assert "state encryption key: environment variable STATE_KEY is not set" in str(info.value)
    with pytest.raises(InvalidError) as info:
        _run(tmp_path, KEYS_ONLY, STATE_KEY=KEY, STATE_KEY_OLD="bm90IDMyIGJ5dGVz")
    assert "STATE_KEY_OLD is not base64 of 32 bytes" in str(info.value)
