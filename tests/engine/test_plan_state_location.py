"""`runner plan` shows where a run would keep each state: the store's own words for it (what a
run logs), and only the fields that apply to that store. In process, no S3 server needed: a
plan connects to nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml

from runner.state import StoreSpec
from runner.verbs.plan import print_plan
from tests.engine.world import open_session

S3_STEP = """
state:
  store: s3
  bucket: platform-state
  name: "${{ kratix.object.name }}-state"
  files: [{path: tf.state, key: tfstate}]
workdir: ../work
run: [[true]]
"""


def _plan(tmp: Path, body: str, store: StoreSpec | None, **environ: str) -> list[Any]:
    session = open_session(
        tmp, {"10-app": body}, namespace="team-a", store=store, preview=True, **environ
    )
    out = io.StringIO()
    print_plan(session, out, "json")
    as_json = json.loads(out.getvalue())
    text = io.StringIO()
    print_plan(session, text, "text")
    as_text = [d for d in yaml.safe_load_all(text.getvalue()) if d]
    assert [p["state"] for p in as_text] == [p["state"] for p in as_json]  # the same, said twice
    return [p["state"] for p in as_json]


def test_an_s3_override_shows_its_bucket_and_prefix_not_the_steps(tmp_path: Path) -> None:
    [state] = _plan(tmp_path, S3_STEP, StoreSpec.parse("s3://other-bucket/teams/a"))
    assert state["store"] == "s3"
    assert state["where"] == "s3://other-bucket/teams/a/my-app-state"
    assert state["bucket"] == "other-bucket"
    assert "namespace" not in state  # not part of an s3 key: showing it would mislead


def test_an_s3_step_without_override_shows_its_own_bucket(tmp_path: Path) -> None:
    [state] = _plan(tmp_path, S3_STEP, None)
    assert state["where"] == "s3://platform-state/my-app-state"
    assert state["bucket"] == "platform-state" and "namespace" not in state


def test_a_local_override_shows_the_folder_and_no_bucket(tmp_path: Path) -> None:
    where = tmp_path / "states"
    [state] = _plan(tmp_path, S3_STEP, StoreSpec.parse(f"local:{where}"))
    assert state["store"] == "local"
    assert state["where"] == f"local {where}/team-a/my-app-state"
    assert state["namespace"] == "team-a"
    assert "bucket" not in state


def test_a_configmap_state_is_shown_without_a_cluster(tmp_path: Path) -> None:
    body = S3_STEP.replace("store: s3", "store: configmap").replace(
        "  bucket: platform-state\n", ""
    )
    [state] = _plan(tmp_path, body, None, KUBECONFIG=str(tmp_path / "none"))
    assert state["where"] == "configmap team-a/my-app-state"
    assert state["namespace"] == "team-a" and "bucket" not in state
