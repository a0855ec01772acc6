"""The stand-in terraform (tests/fakes/bin/terraform) against a real S3 server (moto).

These pin down the behaviour the runner's tests rely on: the seed tutorial's story
(create, no changes with the state, "bucket already exists" without it, destroy),
the state file terraform writes, and the test knobs (FAKE_TF_*).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fakes import FAKE_BIN, S3Server, terraform_env
from tests.fakes.s3 import DEFAULT_PASSWORD, DEFAULT_USER, check_sigv4

MODULE = REPO / "terraform" / "minio-bucket"
BUCKET = "my-app.default"
# The stand-in runs on any python3; the venv's first on PATH avoids slow pyenv shims.
PATH = os.pathsep.join(
    [str(FAKE_BIN), str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]
)


@pytest.fixture(scope="session")
def s3_server():
    with S3Server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    s3_server.reset()
    return s3_server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    dest = tmp_path / "minio-bucket"
    shutil.copytree(MODULE, dest)
    return dest


class TF:
    """Runs the stand-in in a module folder, the way a pipeline step would."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd = cwd
        self.env = env

    def __call__(
        self, *args: str, check: int | None = 0, **env: str
    ) -> subprocess.CompletedProcess:
        full_env = {**self.env, **env}
        for k, v in env.items():
            if v is None:
                full_env.pop(k)
        proc = subprocess.run(
            ["terraform", *args],
            cwd=self.cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def state(self, name: str = "terraform.tfstate") -> dict:
        return json.loads((self.cwd / name).read_text())


@pytest.fixture
def tf(workdir: Path, s3: S3Server) -> TF:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "FAKE_TF_", "MINIO_"))}
    env.update(s3.env, PATH=PATH, TF_IN_AUTOMATION="1")
    runner = TF(workdir, env)
    runner("init", "-input=false")
    return runner


APPLY = ["apply", "-auto-approve", "-input=false", "-state=terraform.tfstate"]


def test_version_init_and_usage(workdir: Path, tmp_path: Path):
    env = {**os.environ, "PATH": PATH}
    run = lambda *a, cwd=workdir: subprocess.run(  # noqa: E731
        ["terraform", *a], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
    for flag in ("version", "-version", "--version"):
        out = run(flag)
        assert out.returncode == 0 and out.stdout.startswith("Terraform v1.9.8 (stand-in)\n")

    out = run("init", "-input=false")
    assert out.returncode == 0, out.stderr
    assert "Terraform has been successfully initialized!" in out.stdout
    assert (workdir / ".terraform").is_dir()
    assert (
        'provider "registry.terraform.io/aminueza/minio"'
        in (workdir / ".terraform.lock.hcl").read_text()
    )
    assert "+ provider registry.terraform.io/aminueza/minio v2.0.1" in run("version").stdout
    again = run("init", "-input=false")
    assert again.returncode == 0 and "Reusing previous version" in again.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    out = run("init", cwd=empty)
    assert out.returncode == 1
    assert "Error: No configuration files" in out.stderr
    assert not (empty / ".terraform").exists()

    out = run("frobnicate")
    assert out.returncode == 1
    assert 'Terraform has no command named "frobnicate"' in out.stderr
    assert "Usage: terraform" in out.stderr

    out = run("apply", "-auto-approve", "-bogus")
    assert out.returncode == 1 and "flag provided but not defined: -bogus" in out.stderr


def test_commands_need_init(workdir: Path, s3: S3Server):
    env = {**os.environ, **s3.env, "PATH": PATH}
    out = subprocess.run(
        ["terraform", *APPLY, f"-var=bucket_name={BUCKET}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "terraform init" in out.stderr
    assert s3.buckets() == []


def test_seed_story(tf: TF, s3: S3Server):
    # First run: no state, the bucket is created and the state written.
    out = tf(*APPLY, f"--var=bucket_name={BUCKET}")
    assert "minio_s3_bucket.bucket: Creating..." in out.stdout
    assert f"minio_s3_bucket.bucket: Creation complete after 0s [id={BUCKET}]" in out.stdout
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in out.stdout
    assert s3.buckets() == [BUCKET]
    saved = (tf.cwd / "terraform.tfstate").read_text()

    # Second run with the state: refresh, no changes.
    out = tf(*APPLY, "-var", f"bucket_name={BUCKET}")
    assert f"minio_s3_bucket.bucket: Refreshing state... [id={BUCKET}]" in out.stdout
    assert "No changes. Your infrastructure matches the configuration." in out.stdout
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in out.stdout

    # Third run without the state (the seed's first script): the provider refuses.
    (tf.cwd / "terraform.tfstate").unlink()
    (tf.cwd / "terraform.tfstate.backup").unlink()
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1)
    assert "minio_s3_bucket.bucket: Creating..." in out.stdout
    assert f"│ Error: [FATAL] bucket already exists! ({BUCKET}): <nil>" in out.stderr
    assert 'in resource "minio_s3_bucket" "bucket":' in out.stderr
    assert out.stderr.startswith("╷\n") and out.stderr.rstrip().endswith("╵")
    assert not (tf.cwd / "terraform.tfstate").exists()

    # With the saved state back, destroy removes the bucket.
    (tf.cwd / "terraform.tfstate").write_text(saved)
    out = tf("destroy", "-auto-approve", "-input=false", f"-var=bucket_name={BUCKET}")
    assert "Destroy complete! Resources: 1 destroyed." in out.stdout
    assert s3.buckets() == []
    state = tf.state()
    assert state["resources"] == [] and state["outputs"] == {}
    out = tf("destroy", "-auto-approve", f"-var=bucket_name={BUCKET}")
    assert "Destroy complete! Resources: 0 destroyed." in out.stdout


def test_state_file_format(tf: TF, s3: S3Server):
    env_var = f"-var=bucket_name={BUCKET}"
    tf(*APPLY, env_var)
    first = tf.state()
    assert first["version"] == 4
    assert first["terraform_version"] == "1.9.8"
    assert first["serial"] == 1
    assert first["check_results"] is None
    assert first["outputs"] == {
        "minio_id": {"value": BUCKET, "type": "string"},
        "minio_url": {"value": f"{s3.url}/minio/{BUCKET}", "type": "string"},
    }
    [res] = first["resources"]
    assert res["mode"] == "managed" and res["type"] == "minio_s3_bucket" and res["name"] == "bucket"
    assert res["provider"] == 'provider["registry.terraform.io/aminueza/minio"]'
    [inst] = res["instances"]
    assert inst["schema_version"] == 0 and inst["sensitive_attributes"] == []
    assert inst["attributes"] == {
        "id": BUCKET,
        "bucket": BUCKET,
        "acl": "private",
        "force_destroy": False,
        "bucket_domain_name": f"http://{s3.endpoint}/minio/{BUCKET}",
    }
    assert not (tf.cwd / "terraform.tfstate.backup").exists()

    # A run with no changes rewrites the state without bumping the serial (as terraform
    # does) and keeps the previous file as the backup.
    tf(*APPLY, env_var)
    assert tf.state() == first
    assert json.loads((tf.cwd / "terraform.tfstate.backup").read_text()) == first

    # A rename replaces the bucket: serial goes up, lineage stays.
    renamed = "my-app.other"
    out = tf(*APPLY, f"-var=bucket_name={renamed}")
    assert "must be replaced" in out.stdout
    assert "Apply complete! Resources: 1 added, 0 changed, 1 destroyed." in out.stdout
    second = tf.state()
    assert second["serial"] > first["serial"]
    assert second["lineage"] == first["lineage"]
    assert second["outputs"]["minio_id"]["value"] == renamed
    assert json.loads((tf.cwd / "terraform.tfstate.backup").read_text()) == first
    assert s3.buckets() == [renamed]

    tf("destroy", "-auto-approve", f"-var=bucket_name={renamed}")
    third = tf.state()
    assert third["serial"] > second["serial"] and third["lineage"] == first["lineage"]


def test_output_json(tf: TF, s3: S3Server):
    assert json.loads(tf("output", "-json").stdout) == {}
    tf(*APPLY, f"-var=bucket_name={BUCKET}")
    out = tf("output", "-json", "-state=terraform.tfstate")
    assert json.loads(out.stdout) == {
        "minio_id": {"sensitive": False, "type": "string", "value": BUCKET},
        "minio_url": {"sensitive": False, "type": "string", "value": f"{s3.url}/minio/{BUCKET}"},
    }
    assert tf("output", "-raw", "minio_id").stdout == BUCKET
    assert tf("output", "minio_id").stdout == f'"{BUCKET}"\n'
    assert 'Output "nope" not found' in tf("output", "nope", check=1).stderr


def test_variables(tf: TF, s3: S3Server):
    out = tf(*APPLY, check=1)
    assert "Error: No value for required variable" in out.stderr
    assert 'variable "bucket_name"' in out.stderr
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", "-var=colour=blue", check=1)
    assert "Error: Value for undeclared variable" in out.stderr
    assert s3.buckets() == []
    out = tf(*APPLY, TF_VAR_bucket_name="from-env.default")
    assert s3.buckets() == ["from-env.default"]
    # -var wins over TF_VAR_
    out = tf("plan", f"-var=bucket_name={BUCKET}", TF_VAR_bucket_name="from-env.default")
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in out.stdout
    out = tf(*APPLY, "-var=bucket_name=Bad_Name", check=1)
    assert "Bucket name contains invalid characters" in out.stderr


def test_plan_changes_nothing(tf: TF, s3: S3Server):
    out = tf("plan", "-input=false", f"-var=bucket_name={BUCKET}")
    assert "# minio_s3_bucket.bucket will be created" in out.stdout
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out.stdout
    assert s3.buckets() == [] and not (tf.cwd / "terraform.tfstate").exists()
    assert tf("plan", "-detailed-exitcode", f"-var=bucket_name={BUCKET}", check=2)
    tf(*APPLY, f"-var=bucket_name={BUCKET}")
    before = (tf.cwd / "terraform.tfstate").read_text()
    out = tf("plan", f"-var=bucket_name={BUCKET}", "-detailed-exitcode")
    assert "No changes." in out.stdout
    assert (tf.cwd / "terraform.tfstate").read_text() == before


def test_apply_needs_approval(tf: TF, s3: S3Server):
    out = tf("apply", "-input=false", f"-var=bucket_name={BUCKET}", check=1)
    assert "Error: No value for approval" in out.stderr
    out = tf("apply", f"-var=bucket_name={BUCKET}", check=1)
    assert "Error: No value for approval" in out.stderr
    assert s3.buckets() == []
    proc = subprocess.run(
        ["terraform", "apply", f"-var=bucket_name={BUCKET}"],
        cwd=tf.cwd,
        env=tf.env,
        input="yes\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert s3.buckets() == [BUCKET]


def test_acl_change_and_requested_replace(tf: TF, s3: S3Server):
    tf(*APPLY, f"-var=bucket_name={BUCKET}")
    main_tf = tf.cwd / "main.tf"
    main_tf.write_text(main_tf.read_text().replace('acl    = "private"', 'acl    = "public-read"'))
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}")
    assert "will be updated in-place" in out.stdout
    assert "Resources: 0 added, 1 changed, 0 destroyed." in out.stdout
    assert tf.state()["resources"][0]["instances"][0]["attributes"]["acl"] == "public-read"
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", "-replace=minio_s3_bucket.bucket")
    assert "will be replaced, as requested" in out.stdout
    assert "Resources: 1 added, 0 changed, 1 destroyed." in out.stdout
    assert s3.buckets() == [BUCKET]


def test_vanished_bucket_is_recreated(tf: TF, s3: S3Server):
    tf(*APPLY, f"-var=bucket_name={BUCKET}")
    s3.delete_bucket(BUCKET)
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}")
    assert "has been deleted" in out.stdout
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in out.stdout
    assert s3.buckets() == [BUCKET]


def test_destroy_refuses_a_bucket_with_objects(tf: TF, s3: S3Server):
    tf(*APPLY, f"-var=bucket_name={BUCKET}")
    s3.put_object(BUCKET, "data/file.txt", b"hello")
    before = tf.state()
    out = tf("destroy", "-auto-approve", f"-var=bucket_name={BUCKET}", check=1)
    assert "The bucket you tried to delete is not empty" in out.stderr
    assert tf.state() == before and s3.buckets() == [BUCKET]


def test_fail_after_create_keeps_state(tf: TF, s3: S3Server):
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, FAKE_TF_FAIL_AFTER_CREATE="1")
    assert "Creation complete" in out.stdout
    assert "FAKE_TF_FAIL_AFTER_CREATE" in out.stderr
    assert s3.buckets() == [BUCKET]
    assert tf.state()["resources"][0]["instances"][0]["attributes"]["id"] == BUCKET
    # With the state kept, the next run is a no-op rather than "bucket already exists".
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}")
    assert "No changes." in out.stdout


def test_fail_after_create_tainted(tf: TF, s3: S3Server):
    tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, FAKE_TF_FAIL_AFTER_CREATE="tainted")
    assert tf.state()["resources"][0]["instances"][0]["status"] == "tainted"
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}")
    assert "is tainted, so must be replaced" in out.stdout
    assert "Resources: 1 added, 0 changed, 1 destroyed." in out.stdout
    assert "status" not in tf.state()["resources"][0]["instances"][0]
    assert s3.buckets() == [BUCKET]


def test_credentials_are_checked_and_never_printed(tf: TF, s3: S3Server):
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, MINIO_PASSWORD="not-the-password")
    assert "The request signature we calculated does not match" in out.stderr
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, MINIO_USER="someone-else")
    assert "The Access Key Id you provided does not exist" in out.stderr
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, MINIO_USER=None, MINIO_PASSWORD=None)
    assert "Access Denied." in out.stderr
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", check=1, MINIO_ENDPOINT=None)
    assert 'The argument "minio_server" is required' in out.stderr
    assert s3.buckets() == []
    out = tf(*APPLY, f"-var=bucket_name={BUCKET}", MINIO_ENDPOINT=s3.url)  # a URL works too
    everything = out.stdout + out.stderr + (tf.cwd / "terraform.tfstate").read_text()
    assert DEFAULT_PASSWORD not in everything and DEFAULT_USER not in everything


def test_unreachable_endpoint(tf: TF):
    from tests.fakes.s3 import free_port

    out = tf(
        *APPLY, f"-var=bucket_name={BUCKET}", check=1, MINIO_ENDPOINT=f"127.0.0.1:{free_port()}"
    )
    assert "connection refused" in out.stderr


def test_log_and_chdir(tf: TF, tmp_path: Path):
    log = tmp_path / "tf.log"
    tf("version", FAKE_TF_LOG=str(log))
    proc = subprocess.run(
        ["terraform", f"-chdir={tf.cwd}", "output", "-json"],
        cwd=tmp_path,
        env={**tf.env, "FAKE_TF_LOG": str(log)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout) == {}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines == [["terraform", "version"], ["terraform", f"-chdir={tf.cwd}", "output", "-json"]]


def test_sleep_is_killed_by_sigterm(tf: TF, s3: S3Server):
    proc = subprocess.Popen(
        ["terraform", *APPLY, f"-var=bucket_name={BUCKET}"],
        cwd=tf.cwd,
        env={**tf.env, "FAKE_TF_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 5
    assert s3.buckets() == [] and not (tf.cwd / "terraform.tfstate").exists()

    proc = subprocess.Popen(
        ["terraform", *APPLY, f"-var=bucket_name={BUCKET}"],
        cwd=tf.cwd,
        env={**tf.env, "FAKE_TF_SLEEP": "30"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "Interrupt received." in err


SEED_MODULE = """\
terraform {
  required_providers {
    minio = {
      source = "aminueza/minio"
      version = "2.0.1"
    }
  }
}

variable bucket_name {
  type = string
}

resource "minio_s3_bucket" "state_terraform_s3" {
  bucket = "${var.bucket_name}"
  acl = "public"
}

output "minio_id" {
  value = "${minio_s3_bucket.state_terraform_s3.id}"
}

output "minio_url" {
  value = "${minio_s3_bucket.state_terraform_s3.bucket_domain_name}"
}
"""


def test_seed_module_shape(tmp_path: Path, s3: S3Server):
    """The seed tutorial's own module (another resource name, "${...}" outputs) works too."""
    (tmp_path / "main.tf").write_text(SEED_MODULE)
    env = {**os.environ, **s3.env, "PATH": PATH}
    tf = TF(tmp_path, env)
    tf("init")
    tf("apply", "-auto-approve", f"--var=bucket_name={BUCKET}")
    out = tf("apply", "-auto-approve", f"--var=bucket_name={BUCKET}")
    assert f"minio_s3_bucket.state_terraform_s3: Refreshing state... [id={BUCKET}]" in out.stdout
    assert tf.state()["resources"][0]["instances"][0]["attributes"]["acl"] == "public"
    (tmp_path / "terraform.tfstate").unlink()
    out = tf("apply", "-auto-approve", f"--var=bucket_name={BUCKET}", check=1)
    assert 'resource "minio_s3_bucket" "state_terraform_s3"' in out.stderr


def test_s3_server_helpers(s3: S3Server):
    assert s3.env == {
        "MINIO_ENDPOINT": s3.endpoint,
        "MINIO_USER": DEFAULT_USER,
        "MINIO_PASSWORD": DEFAULT_PASSWORD,
    }
    assert s3.url == f"http://{s3.endpoint}"
    s3.create_bucket("b-two")
    s3.create_bucket("a-one")
    assert s3.buckets() == ["a-one", "b-two"]
    s3.reset()
    assert s3.buckets() == []
    assert check_sigv4({"REQUEST_METHOD": "GET"}, DEFAULT_USER, DEFAULT_PASSWORD) == "AccessDenied"


def test_terraform_env(s3: S3Server):
    env = terraform_env(s3, base={"PATH": "/usr/bin"}, TF_IN_AUTOMATION="1")
    path = os.pathsep.join([str(FAKE_BIN), str(Path(sys.executable).parent), "/usr/bin"])
    assert env == {**s3.env, "PATH": path, "TF_IN_AUTOMATION": "1"}
    assert shutil.which("terraform", path=env["PATH"]) == str(FAKE_BIN / "terraform")


@pytest.mark.slow
def test_s3_server_foreground_entry_point():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.s3", "--port", "0", "--quiet"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("127.0.0.1:")
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=f"http://{endpoint}",
            region_name="us-east-1",
            aws_access_key_id=DEFAULT_USER,
            aws_secret_access_key=DEFAULT_PASSWORD,
        )
        client.create_bucket(Bucket="demo")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["demo"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
