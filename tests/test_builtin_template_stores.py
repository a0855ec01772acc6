"""The Terraform templates (runner/library/terraform-*.yaml) keep their state in the store their
`store` param names: every registered store kind, with `bucket` and `encryption` for the
fields a step would write in its own `state:`. Run as users do (`runner run`, a subprocess),
with a stand-in terraform that counts its applies in terraform.tfstate."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from runner.state import STORES, kinds
from runner.state.encryption import ENTRY, MAGIC
from runner.state.s3 import unpack
from runner.stepfile.step_template_library import BUILTIN_FOLDER
from tests.conftest import Pipeline, use_kube_api
from tests.s3support import S3Endpoint, s3_endpoint

TERRAFORM_TEMPLATES = ("terraform-apply", "terraform-destroy")
KEY = base64.b64encode(bytes(range(32))).decode()

# A terraform for the templates' commands: `apply` adds one to the state's serial.
FAKE_TERRAFORM = """#!/bin/sh
case "$1" in
  init) echo "Terraform has been successfully initialized!" ;;
  apply)
    n=$(python3 -c 'import json,sys; print(json.load(open("terraform.tfstate"))["serial"])' 2>/dev/null || echo 0)
    echo "{\\"version\\": 4, \\"serial\\": $((n + 1))}" > terraform.tfstate
    echo "Apply complete! serial $((n + 1))" ;;
  output) echo '{"serial": {"value": 1}}' ;;
  destroy) echo '{"version": 4, "serial": 0}' > terraform.tfstate; echo "Destroy complete!" ;;
esac
"""


def _params(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((BUILTIN_FOLDER / f"{name}.yaml").read_text())
    return doc["spec"]["params"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", TERRAFORM_TEMPLATES)
def test_the_store_param_offers_every_registered_store(name: str) -> None:
    # The runner's own stores: a test may register one of its own (tests/stores).
    shipped = [k for k in kinds() if STORES[k].startswith("runner.")]
    assert sorted(_params(name)["store"]["enum"]) == sorted(shipped)


def test_both_terraform_templates_take_the_same_params() -> None:
    assert _params("terraform-apply") == _params("terraform-destroy") | {
        "stateName": _params("terraform-apply")["stateName"]
    }


@pytest.fixture
def terraform(pipeline: Pipeline) -> Pipeline:
    """The pipeline with a module folder and the stand-in terraform first on PATH."""
    (pipeline.root / "mod").mkdir()
    (pipeline.root / "mod" / "main.tf").write_text("# a module\n")
    bin_dir = pipeline.root / "bin"
    bin_dir.mkdir()
    (bin_dir / "terraform").write_text(FAKE_TERRAFORM)
    (bin_dir / "terraform").chmod(0o755)
    pipeline.env["PATH"] = f"{bin_dir}{os.pathsep}{pipeline.env['PATH']}"
    return pipeline


def apply_step(pipeline: Pipeline, **given: Any) -> None:
    with_ = {"module": "../mod", "stateName": "${{ inputs.name }}-state", **given}
    pipeline.step(
        "apply",
        f"uses: terraform-apply\nwith: {json.dumps(with_)}\n"
        "inputs: { name: { query: .metadata.name } }\n",
        file="10-apply.yaml",
    )


def destroy_step(pipeline: Pipeline, **given: Any) -> None:
    with_ = {"module": "../mod", "stateName": "${{ inputs.name }}-state", **given}
    pipeline.step(
        "destroy",
        f"uses: terraform-destroy\nwith: {json.dumps(with_)}\n"
        "inputs: { name: { query: .metadata.name } }\n",
        file="90-destroy.yaml",
    )


def serial(tfstate: bytes) -> int:
    return int(json.loads(tfstate)["serial"])


def test_store_local_keeps_the_state_in_the_local_folder(terraform: Pipeline) -> None:
    terraform.env.pop("RUNNER_STATE_STORE")
    apply_step(terraform, store="local")
    env = {"RUNNER_STATE_DIR": str(terraform.state_dir)}
    for expected in (1, 2):
        result = terraform.run("run", env=env)
        assert result.returncode == 0, result.stderr
        assert f"serial {expected}" in result.stdout
    saved = terraform.state_dir / "default" / "my-app-state" / "current" / "tfstate"
    assert serial(saved.read_bytes()) == 2


def test_store_configmap_keeps_the_state_in_a_configmap(terraform: Pipeline, api: Any) -> None:
    use_kube_api(terraform, api, 5)
    apply_step(terraform)  # configmap is the default
    for expected in (1, 2):
        result = terraform.run("run")
        assert result.returncode == 0, result.stderr
        assert f"serial {expected}" in result.stdout
    configmap = api.get_object("configmaps", "default", "my-app-state")
    assert serial(configmap["data"]["tfstate"].encode()) == 2
    assert not terraform.state_dir.exists()


def test_store_secret_keeps_the_state_in_a_secret(terraform: Pipeline, api: Any) -> None:
    use_kube_api(terraform, api, 5)
    apply_step(terraform, store="secret")
    result = terraform.run("run")
    assert result.returncode == 0, result.stderr
    secret = api.get_object("secrets", "default", "my-app-state")
    assert serial(base64.b64decode(secret["data"]["tfstate"])) == 1
    assert api.get_object("configmaps", "default", "my-app-state") is None


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    yield from s3_endpoint()


@pytest.fixture
def bucket(s3: S3Endpoint, terraform: Pipeline) -> str:
    terraform.env.pop("RUNNER_STATE_STORE")
    terraform.env.update(s3.env(RUNNER_LEASE_SECONDS="5"))
    return s3.new_bucket()


def test_store_s3_keeps_the_state_in_the_bucket_param(
    terraform: Pipeline, s3: S3Endpoint, bucket: str
) -> None:
    apply_step(terraform, store="s3", bucket=bucket)
    for expected in (1, 2):
        result = terraform.run("run")
        assert result.returncode == 0, result.stderr
        assert f"serial {expected}" in result.stdout
    assert s3.keys(bucket) == ["my-app-state"]
    assert serial(unpack(s3.get(bucket, "my-app-state") or b"")["tfstate"]) == 2


def test_store_s3_without_a_bucket_param_takes_the_state_store_option(
    terraform: Pipeline, s3: S3Endpoint, bucket: str
) -> None:
    apply_step(terraform, store="s3")
    result = terraform.run("run", "--state-store", f"s3://{bucket}/platform")
    assert result.returncode == 0, result.stderr
    assert s3.keys(bucket) == ["platform/my-app-state"]


def test_store_s3_with_no_bucket_anywhere_stops_before_terraform_runs(
    terraform: Pipeline, bucket: str
) -> None:
    apply_step(terraform, store="s3")
    result = terraform.run("run")
    assert result.returncode == 2
    assert "the s3 store needs a bucket: none is given" in result.stderr
    assert "Terraform has been" not in result.stdout


def test_the_encryption_param_encrypts_the_state_and_destroy_reads_it(
    terraform: Pipeline, s3: S3Endpoint, bucket: str
) -> None:
    encryption = {"key": {"env": "RUNNER_STATE_KEY"}}
    apply_step(terraform, store="s3", bucket=bucket, encryption=encryption)
    destroy_step(terraform, store="s3", bucket=bucket, encryption=encryption)
    env = {"RUNNER_STATE_KEY": KEY}
    for expected in (1, 2):
        result = terraform.run("run", env=env)
        assert result.returncode == 0, result.stderr
        assert f"serial {expected}" in result.stdout
    stored = unpack(s3.get(bucket, "my-app-state") or b"")
    assert list(stored) == [ENTRY] and stored[ENTRY].startswith(MAGIC)
    assert b"serial" not in stored[ENTRY]
    result = terraform.run("run", env={**env, "KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert "Destroy complete!" in result.stdout
    assert s3.keys(bucket) == []  # onDelete: remove


def test_without_the_key_the_encrypted_state_is_not_touched(
    terraform: Pipeline, s3: S3Endpoint, bucket: str
) -> None:
    encryption = {"key": {"env": "RUNNER_STATE_KEY"}}
    apply_step(terraform, store="s3", bucket=bucket, encryption=encryption)
    assert terraform.run("run", env={"RUNNER_STATE_KEY": KEY}).returncode == 0
    before = s3.get(bucket, "my-app-state")
    other = base64.b64encode(bytes(32)).decode()
    result = terraform.run("run", env={"RUNNER_STATE_KEY": other})
    assert result.returncode == 3, result.stderr
    assert "Terraform has been" not in result.stdout
    assert s3.get(bucket, "my-app-state") == before


def _validate(pipeline: Pipeline) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(pipeline.steps)],
        cwd=pipeline.work,
        env=pipeline.env,
        capture_output=True,
        text=True,
    )


def test_a_bucket_with_a_store_that_keeps_none_is_a_validate_error(terraform: Pipeline) -> None:
    terraform.env.pop("RUNNER_STATE_STORE")
    apply_step(terraform, store="configmap", bucket="platform-state")
    result = _validate(terraform)
    assert result.returncode == 2
    assert 'store "configmap" keeps no bucket: bucket is for the s3 store' in result.stderr
    assert "10-apply.yaml" in result.stderr  # located at the step's with:


def test_an_unknown_store_is_refused_naming_the_kinds(terraform: Pipeline) -> None:
    apply_step(terraform, store="gcs")
    result = _validate(terraform)
    assert result.returncode == 2
    assert "param store" in result.stderr and "s3" in result.stderr


def test_an_encryption_param_that_is_not_a_mapping_is_a_validate_error(
    terraform: Pipeline,
) -> None:
    apply_step(terraform, encryption="RUNNER_STATE_KEY")
    result = _validate(terraform)
    assert result.returncode == 2
    assert "param encryption" in result.stderr


def test_an_optional_param_left_out_leaves_out_the_field_it_is_and_is_empty_in_text(
    pipeline: Pipeline,
) -> None:
    (pipeline.steps / "t.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\nmetadata: { name: t }\n"
        "spec:\n  params: { note: { type: string, required: false } }\n"
        "  timeout: '${{ params.note }}'\n"
        "  status: { note: 'note=${{ params.note }}', whole: '${{ params.note }}' }\n"
    )
    pipeline.step("given", "uses: t\nwith: { note: 5m }\n", file="10-given.yaml")
    pipeline.step("left-out", "uses: t\n", file="20-left-out.yaml")
    result = pipeline.run("run", "left-out")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"note": "note="}  # no timeout, no whole
    result = pipeline.run("run", "given")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"note": "note=5m", "whole": "5m"}


def test_an_optional_param_left_out_stays_left_out_through_a_template_using_a_template(
    pipeline: Pipeline,
) -> None:
    (pipeline.steps / "t.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\nmetadata: { name: t }\n"
        "spec:\n  params: { note: { type: string, required: false } }\n"
        "  status: { whole: '${{ params.note }}', ran: yes }\n"
    )
    (pipeline.steps / "outer.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\nmetadata: { name: outer }\n"
        "spec:\n  params: { note: { type: string, required: false } }\n"
        "  uses: t\n  with: { note: '${{ params.note }}' }\n"
    )
    pipeline.step("user", "uses: outer\n", file="10-user.yaml")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"ran": "yes"}
