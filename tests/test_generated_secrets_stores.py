"""A generated secret kept by every registered store, plain and encrypted (the backends of
tests/test_store_contract.py): made and saved by the first restore, the same value restored by
the next, whichever store keeps the state."""

from __future__ import annotations

import io
from pathlib import Path

from runner.engine.policy import StatePolicy
from runner.engine.session import Session
from runner.engine.state import StatePhase
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger
from runner.state import StoreSpec
from runner.stepfile.loader import load_steps
from tests.test_store_contract import REF, Backend, backend, s3  # noqa: F401 - fixtures

STEP = """apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata: {name: app}
spec:
  secrets:
    DB_PASSWORD: { generate: { length: 40 } }
  state: { store: secret, name: my-app-state, files: [{path: data.txt}] }
  run: [[true]]
"""


def test_every_store_keeps_a_generated_secret(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "steps.d").mkdir()
    (tmp_path / "steps.d" / "app.yaml").write_text(STEP)
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "object.yaml").write_text(
        "apiVersion: x/v1\nkind: App\nmetadata: {name: my-app, namespace: default}\n"
    )
    env = {"KRATIX_WORKFLOW_TYPE": "resource", "KRATIX_WORKFLOW_ACTION": "configure"}
    ctx = KratixContext.from_environment(
        env, str(tmp_path / "input"), str(tmp_path / "out"), str(tmp_path / "meta")
    )
    log = Logger(stream=io.StringIO(), out=io.StringIO())
    steps = load_steps([tmp_path / "steps.d"]).steps
    local = StoreSpec("local", str(tmp_path / "unused"))
    prepared = Session.open(steps, [], ctx, env, log, local).prepared[0]
    assert prepared.state_ref == REF
    policy = StatePolicy.of(prepared, ctx)
    assert policy is not None
    phase = StatePhase(log)
    workdir = tmp_path / "work"
    workdir.mkdir()
    restored, version, made = phase.restore(prepared, policy, backend.open(), workdir)
    value = made["DB_PASSWORD"]
    assert len(value) == 40 and restored is not None
    loaded = backend.open().load(REF)
    assert loaded is not None and loaded.version == version
    assert loaded.files == {"generated-secret.DB_PASSWORD": value.encode()}
    (workdir / "data.txt").write_text("state\n")
    phase.finish(prepared, policy, backend.open(), workdir, restored, None, version)
    _, _, kept = phase.restore(prepared, policy, backend.open(), workdir)
    assert kept == {"DB_PASSWORD": value}
    again = backend.open().load(REF)
    assert again is not None and set(again.files) == {"generated-secret.DB_PASSWORD", "data.txt"}
    assert value not in log.stream.getvalue()  # type: ignore[attr-defined]
