"""`runner pipeline`: the Kratix Pipeline for the steps, checked against what Kratix accepts.

Kratix decodes a Pipeline into its Go types and refuses unknown fields; the schema those types
make is tests/data/kratix/pipeline.schema.yaml (see its header for why it is transcribed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.conftest import REPO

KRATIX = REPO / "tests" / "data" / "kratix"
PIPELINE_SCHEMA = Draft202012Validator(
    yaml.safe_load((KRATIX / "pipeline.schema.yaml").read_text())
)
IMAGE = "example.com/pipeline:1.0"


def kratix_problems(document: Any) -> list[str]:
    """Why Kratix would refuse `document` as a Pipeline ([] when it accepts it)."""
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in PIPELINE_SCHEMA.iter_errors(document)
    ]


def runner(pipeline, *args: str, env: dict[str, str] | None = None):
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args, "--steps-dir", str(pipeline.steps)],
        cwd=pipeline.work, env={**pipeline.env, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def generated(pipeline, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = runner(pipeline, "pipeline", "--image", IMAGE, *args, env=env)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    assert not kratix_problems(document), kratix_problems(document)
    return document


@pytest.fixture
def shipped(pipeline):
    """The pipeline's steps folder holding the shipped steps (steps.d) and their Terraform."""
    shutil.rmtree(pipeline.steps)
    shutil.copytree(REPO / "steps.d", pipeline.steps)
    shutil.copytree(REPO / "terraform", pipeline.root / "terraform")
    return pipeline


def state_step(pipeline, name: str, extra: str = "", file: str | None = None) -> Path:
    return pipeline.step(
        name, f"{extra}\nstate: {{ store: secret, files: [{{ path: s.json }}] }}\nrun: [[true]]",
        file=file,
    )  # fmt: skip


def test_the_shipped_create_step_gets_its_minio_secret_and_the_rbac_runner_rbac_prints(shipped):
    document = generated(shipped, "create-bucket")
    assert document["apiVersion"] == "platform.kratix.io/v1alpha1"
    assert document["kind"] == "Pipeline" and document["metadata"] == {"name": "create-bucket"}
    [container] = document["spec"]["containers"]
    assert container["name"] == "create-bucket" and container["image"] == IMAGE
    assert container["command"] == ["runner", "run", "create-bucket"]
    assert container["env"] == [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": "app-promise-minio-creds",
                                                          "key": key}}}
        for variable, key in (("MINIO_USER", "username"), ("MINIO_PASSWORD", "password"),
                              ("MINIO_ENDPOINT", "endpoint"))
    ]  # fmt: skip
    rbac = runner(shipped, "rbac", "create-bucket")
    assert rbac.returncode == 0, rbac.stderr
    assert document["spec"]["rbac"] == yaml.safe_load(rbac.stdout)["rbac"]


def test_containers_follow_the_order_given_and_the_name_defaults_to_the_first_step(pipeline):
    state_step(pipeline, "b-second", "on: {action: delete}")
    pipeline.step("a-first", "run: [[true]]")
    document = generated(pipeline, "b-second", "a-first")
    assert document["metadata"]["name"] == "b-second"
    assert [c["name"] for c in document["spec"]["containers"]] == ["b-second", "a-first"]
    assert [c["command"][2] for c in document["spec"]["containers"]] == ["b-second", "a-first"]
    assert generated(pipeline, "a-first", "--name", "instance-configure")["metadata"] == {
        "name": "instance-configure"
    }


def test_rbac_permissions_are_exactly_what_runner_rbac_computes_for_those_steps(pipeline):
    state_step(pipeline, "in-secret")
    pipeline.step("in-configmap", "state: { store: configmap, namespace: shared, lock: false,"
                                  " files: [{ path: s.json }] }\nrun: [[true]]")  # fmt: skip
    pipeline.step("stateless", "run: [[true]]")
    names = ["in-secret", "in-configmap", "stateless"]
    rbac = runner(pipeline, "rbac", *names)
    assert rbac.returncode == 0, rbac.stderr
    expected = yaml.safe_load(rbac.stdout)["rbac"]["permissions"]
    assert {"apiGroups": [""], "verbs": ["get", "list", "create", "update", "delete"],
            "resources": ["configmaps"], "resourceNamespace": "shared"} in expected  # fmt: skip
    assert generated(pipeline, *names)["spec"]["rbac"]["permissions"] == expected


def test_stateless_steps_get_no_rbac(pipeline):
    pipeline.step("stateless", "run: [[true]]")
    assert "rbac" not in generated(pipeline, "stateless")["spec"]


def test_without_names_the_steps_for_the_kratix_environment_are_chosen(pipeline):
    state_step(pipeline, "create", "on: {action: configure, promise: [app, app-v2]}", "10-c.yaml")
    pipeline.step("render", "on: {promise: app}\nrun: [[true]]", file="20-r.yaml")
    pipeline.step("other", "on: {promise: db}\nrun: [[true]]", file="30-o.yaml")
    state_step(pipeline, "delete", "on: {action: delete}", file="90-d.yaml")

    def chosen(**env: str) -> list[str]:
        document = generated(pipeline, env=env)
        return [c["name"] for c in document["spec"]["containers"]]

    assert chosen(KRATIX_PROMISE_NAME="app") == ["create", "render"]
    assert chosen(KRATIX_PROMISE_NAME="app-v2") == ["create"]
    assert chosen(KRATIX_PROMISE_NAME="app", KRATIX_WORKFLOW_ACTION="delete") == ["delete"]


def test_a_secret_read_from_a_file_is_left_to_a_volume_with_a_warning(pipeline):
    pipeline.step("files", """
        secrets:
          CA: { file: /var/run/secrets/minio/ca.crt, secretKeyRef: { name: minio-ca, key: ca.crt } }
          TOKEN: { env: API_TOKEN, secretKeyRef: { name: api, key: token } }
        run: [[true]]
    """)  # fmt: skip
    result = runner(pipeline, "pipeline", "--image", IMAGE, "files")
    assert result.returncode == 0, result.stderr
    [container] = yaml.safe_load(result.stdout)["spec"]["containers"]
    assert container["env"] == [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
    ]
    assert (
        "runner: [files] warning: secret CA is read from the file /var/run/secrets/minio/ca.crt: "
        "mount Secret minio-ca (key ca.crt) there with a volume; no env entry is made for it"
    ) in result.stderr


def test_a_secret_without_a_secret_key_ref_is_named_and_gets_no_env_entry(pipeline):
    pipeline.step("bare", "secrets: { TOKEN: { env: API_TOKEN } }\nrun: [[true]]")
    result = runner(pipeline, "pipeline", "--image", IMAGE, "bare", env={"API_TOKEN": "s3cr3t-v"})
    assert result.returncode == 0, result.stderr
    assert "env" not in yaml.safe_load(result.stdout)["spec"]["containers"][0]
    assert (
        "warning: secret TOKEN is read from $API_TOKEN and names no secretKeyRef: give the "
        "container API_TOKEN yourself"
    ) in result.stderr
    assert "s3cr3t-v" not in result.stdout + result.stderr


def test_an_unknown_step_is_exit_2_with_did_you_mean(pipeline):
    pipeline.step("create-bucket", "run: [[true]]")
    result = runner(pipeline, "pipeline", "--image", IMAGE, "create-bukcet")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        'runner: no step named "create-bukcet"',
        '  hint: did you mean "create-bucket"?',
    ]


def test_no_steps_for_the_workflow_is_exit_2(pipeline):
    pipeline.step("create", "run: [[true]]")
    result = runner(
        pipeline, "pipeline", "--image", IMAGE, env={"KRATIX_WORKFLOW_ACTION": "delete"}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "runner: no steps for the Pipeline" in result.stderr.splitlines()


def test_the_image_is_required(pipeline):
    pipeline.step("create", "run: [[true]]")
    result = runner(pipeline, "pipeline", "create")
    assert result.returncode == 2
    assert "the following arguments are required: --image" in result.stderr


def test_an_invalid_step_file_is_exit_2_and_no_pipeline(pipeline):
    pipeline.step("bad", "secrets: { S: { env: S, secretKeyRef: { name: Bad_Name, key: k } } }")
    result = runner(pipeline, "pipeline", "--image", IMAGE, "bad")
    assert result.returncode == 2 and result.stdout == ""
    assert "spec.secrets.S.secretKeyRef.name" in result.stderr


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["spec"]["containers"][0].update(envv=[]), "spec.containers.0"),
        (lambda d: d["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"].pop("key"),
         "spec.containers.0.env.0.valueFrom.secretKeyRef"),
        (lambda d: d["spec"]["rbac"]["permissions"][0].pop("verbs"), "spec.rbac.permissions.0"),
        (lambda d: d.update(kind="Pipelines"), "kind"),
    ],
    ids=["unknown-field", "no-key", "no-verbs", "kind"],
)  # fmt: skip
def test_the_kratix_schema_refuses_what_kratix_refuses(shipped, change, path):
    document = generated(shipped, "create-bucket")
    change(document)
    assert any(p.startswith(f"{path}: ") for p in kratix_problems(document)), kratix_problems(
        document
    )
