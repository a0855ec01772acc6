"""The tutorial's story, on the shipped steps.d, against a real S3 server on loopback.

Run 1 creates bucket my-app.default; run 2 restores the state and changes nothing; without
the state store Terraform fails with "bucket already exists" (the tutorial's bug); the delete
workflow removes the bucket and the state.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO
from tests.fakes import FAKE_BIN, S3Server
from tests.kubeapi import FakeKubeAPI


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture(params=["local", "configmap"])
def seed(request, pipeline, s3):
    """The shipped steps, with state in the local store or in ConfigMaps on a loopback API server."""
    s3.reset()
    shutil.rmtree(pipeline.steps)
    shutil.copytree(REPO / "steps.d", pipeline.steps)
    # The steps' workdir is ../terraform/minio-bucket, relative to the step files.
    shutil.copytree(REPO / "terraform", pipeline.root / "terraform")
    pipeline.env.update(s3.env)
    pipeline.env["PATH"] = f"{FAKE_BIN}:{pipeline.env['PATH']}"
    if request.param == "local":
        pipeline.has_state = lambda name: (pipeline.state_dir / "default" / name).exists()
        yield pipeline
        return
    with FakeKubeAPI() as api:
        # As in a pod: the steps say `store: configmap`; no override.
        pipeline.env.pop("RUNNER_STATE_STORE")
        pipeline.env["KUBECONFIG"] = str(api.write_kubeconfig(pipeline.root / "kubeconfig"))
        pipeline.has_state = lambda name: api.get_object("configmaps", "default", name) is not None
        yield pipeline


@pytest.mark.slow
def test_seed_story_create_idempotent_rerun_and_delete(seed, s3):
    first = seed.run("run", "create-bucket")
    assert first.returncode == 0, first.stderr
    assert seed.has_state("my-app-state")
    assert s3.buckets() == ["my-app.default"]
    assert "Apply complete! Resources: 1 added" in first.stdout
    status = seed.status()
    assert status["bucket"] == "my-app.default"
    assert status["message"] == "Bucket my-app.default is ready"
    assert status["endpoint"] == f"http://{s3.endpoint}/minio/my-app.default"  # readable: mask false

    second = seed.run("run", "create-bucket")
    assert second.returncode == 0, second.stderr
    assert "restored state" in second.stderr
    assert "No changes." in second.stdout
    assert s3.buckets() == ["my-app.default"]

    deleted = seed.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert deleted.returncode == 0, deleted.stderr
    assert "delete-bucket" in deleted.stderr and "create-bucket" not in deleted.stderr
    assert s3.buckets() == []
    assert "removed state" in deleted.stderr
    assert not seed.has_state("my-app-state")

    for result in (first, second, deleted):
        assert s3.env["MINIO_PASSWORD"] not in result.stdout + result.stderr


@pytest.mark.slow
def test_without_the_state_store_the_rerun_fails_with_bucket_already_exists(seed, s3):
    assert seed.run("run", "create-bucket").returncode == 0
    again = seed.run("run", "create-bucket", "--state-store", "none")
    assert again.returncode == 1
    assert "bucket already exists" in again.stderr


@pytest.mark.slow
def test_state_saved_when_terraform_fails_half_way_so_the_next_run_recovers(seed, s3):
    failed = seed.run("run", "create-bucket", env={"FAKE_TF_FAIL_AFTER_CREATE": "1"})
    assert failed.returncode == 1
    assert s3.buckets() == ["my-app.default"]
    assert "saved state" in failed.stderr
    retry = seed.run("run", "create-bucket")
    assert retry.returncode == 0, retry.stderr
    assert "bucket already exists" not in retry.stderr


def test_two_requests_get_two_buckets_and_two_states(seed, s3):
    assert seed.run("run", "create-bucket").returncode == 0
    seed.request(
        {
            "apiVersion": "workshop.kratix.io/v1",
            "kind": "App",
            "metadata": {"name": "todo", "namespace": "default"},
        }
    )
    assert seed.run("run", "create-bucket").returncode == 0
    assert sorted(s3.buckets()) == ["my-app.default", "todo.default"]
    assert seed.has_state("todo-state") and seed.has_state("my-app-state")
