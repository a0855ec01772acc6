"""The s3 store through `runner run` and `runner state`, against a real S3 server on loopback
(or `$RUNNER_TEST_S3_ENDPOINT`, see tests/s3support.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import yaml

from runner.state.base import StateChanged, StateRef
from runner.state.s3 import S3Store, pack, parse_location, unpack, unpack_with_header
from tests.conftest import Pipeline
from tests.s3support import S3Endpoint, s3_endpoint

COUNTER = """
    state:
      store: s3
      bucket: "{bucket}"
      name: counter
      files: [{path: count.txt, key: count}]
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          echo $((n + 1)) > count.txt
          echo "count is $((n + 1))"
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    yield from s3_endpoint()


@pytest.fixture
def bucket(s3: S3Endpoint, pipeline: Pipeline) -> str:
    """A fresh bucket, and the pipeline reading the s3 store's variables (no store override)."""
    name = s3.new_bucket()
    pipeline.env.pop("RUNNER_STATE_STORE")
    pipeline.env.update(s3.env(RUNNER_LEASE_SECONDS="5"))
    return name


def counter(pipeline: Pipeline, bucket: str, extra: str = "") -> None:
    body = COUNTER.replace("{bucket}", bucket)
    if extra:
        body = body.replace("      name: counter\n", f"      name: counter\n{extra}")
    pipeline.step("counter", body)


def stored(s3: S3Endpoint, bucket: str, key: str = "counter") -> dict[str, bytes] | None:
    body = s3.get(bucket, key)
    return None if body is None else unpack(body)


def test_state_is_created_then_restored_by_the_next_run(s3, bucket, pipeline):
    counter(pipeline, bucket)
    for expected in (1, 2):
        result = pipeline.run("run")
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
        assert f"s3://{bucket}/counter" in result.stderr
    assert stored(s3, bucket) == {"count": b"2\n"}
    assert s3.keys(bucket) == ["counter"]  # the lock object is gone once the run ends


def test_the_state_store_option_gives_bucket_and_prefix(s3, bucket, pipeline):
    other = s3.new_bucket()
    counter(pipeline, bucket)
    result = pipeline.run("run", "--state-store", f"s3://{other}/teams/a/")
    assert result.returncode == 0, result.stderr
    assert s3.keys(other) == ["teams/a/counter"]
    assert s3.keys(bucket) == []


@pytest.mark.slow
def test_a_save_over_a_state_another_run_changed_is_exit_3_and_keeps_theirs(s3, bucket, pipeline):
    # The step's command stands for a concurrent writer: it replaces the stored object.
    counter(pipeline, bucket)
    assert pipeline.run("run").returncode == 0
    pipeline.step(
        "counter",
        COUNTER.replace("{bucket}", bucket).replace(
            "          n=$(cat", '          python3 -c "$WRITE"\n          n=$(cat'
        ),
    )
    theirs = pack({"count": b"theirs\n"})
    write = (
        "import boto3; boto3.client('s3').put_object("
        f"Bucket='{bucket}', Key='counter', Body=bytes.fromhex('{theirs.hex()}'))"
    )
    result = pipeline.run("run", env={"WRITE": write})
    assert result.returncode == 3, result.stderr
    assert "changed by another run" in result.stderr
    assert stored(s3, bucket) == {"count": b"theirs\n"}


def test_a_held_lock_asks_kratix_to_retry_and_exits_0(s3, bucket, pipeline):
    counter(pipeline, bucket)
    holder = {"holder": "busy-pod/7", "expires": time.time() + 300}
    s3.client.put_object(Bucket=bucket, Key="counter.lock", Body=json.dumps(holder).encode())
    result = pipeline.run("run", "--lock-wait", "0.5")
    assert result.returncode == 0, result.stderr
    assert "is held by busy-pod/7" in result.stderr
    assert "count is" not in result.stdout
    control = yaml.safe_load((pipeline.metadata / "workflow-control.yaml").read_text())
    minutes, seconds = re.fullmatch(r"(?:([0-9]+)m)?(?:([0-9]+)s)?", control["retryAfter"]).groups()
    assert 5 <= int(minutes or 0) * 60 + int(seconds or 0) <= 301
    assert stored(s3, bucket) is None


def test_an_expired_lock_is_taken_over(s3, bucket, pipeline):
    counter(pipeline, bucket)
    holder = {"holder": "killed-pod/1", "expires": time.time() - 1}
    s3.client.put_object(Bucket=bucket, Key="counter.lock", Body=json.dumps(holder).encode())
    result = pipeline.run("run", "--lock-wait", "5")
    assert result.returncode == 0, result.stderr
    assert "count is 1" in result.stdout
    assert s3.keys(bucket) == ["counter"]


def test_on_delete_remove_removes_the_object(s3, bucket, pipeline):
    counter(pipeline, bucket)
    pipeline.step(
        "forget",
        f"""
        on: {{action: delete}}
        state: {{store: s3, bucket: {bucket}, name: counter, files: [{{path: count.txt, key: count}}], onDelete: remove}}
        workdir: ../work
        run: [[cat, count.txt]]
        """,
    )
    assert pipeline.run("run").returncode == 0
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert s3.keys(bucket) == []


@pytest.mark.slow
def test_state_show_rm_and_unlock(s3, bucket, pipeline):
    counter(pipeline, bucket)
    assert pipeline.run("run").returncode == 0
    shown = pipeline.run("state", "show", "counter")
    assert shown.returncode == 0, shown.stderr
    assert f"s3://{bucket}/counter:" in shown.stdout and "count: 2 bytes" in shown.stdout
    raw = pipeline.run("state", "show", "counter", "--key", "count")
    assert raw.stdout == "1\n"
    s3.client.put_object(Bucket=bucket, Key="counter.lock", Body=b'{"holder": "x", "expires": 0}')
    unlocked = pipeline.run("state", "unlock", "counter")
    assert unlocked.returncode == 0 and "unlocked" in unlocked.stdout
    assert pipeline.run("state", "unlock", "counter").stdout.strip().endswith("was not locked")
    removed = pipeline.run("state", "rm", "counter")
    assert removed.returncode == 0 and f"removed s3://{bucket}/counter" in removed.stdout
    assert s3.keys(bucket) == []


def test_wrong_credentials_are_exit_3_naming_the_bucket_never_the_secret(s3, bucket, pipeline):
    counter(pipeline, bucket)
    secret = "not-the-password-but-secret-9f3a"
    result = pipeline.run("run", env={"AWS_SECRET_ACCESS_KEY": secret})
    assert result.returncode == 3, result.stderr
    assert f"s3://{bucket}/counter" in result.stderr
    assert "access denied" in result.stderr or "refused" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert "count is" not in result.stdout  # before any command


def test_a_missing_bucket_is_exit_3_not_an_empty_state(s3, bucket, pipeline):
    counter(pipeline, "no-such-bucket-here")
    result = pipeline.run("run")
    assert result.returncode == 3, result.stderr
    assert "bucket no-such-bucket-here does not exist" in result.stderr
    assert "count is" not in result.stdout


def test_an_endpoint_that_is_down_is_exit_3_naming_bucket_and_key(s3, bucket, pipeline):
    counter(pipeline, bucket)
    result = pipeline.run("run", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert result.returncode == 3, result.stderr
    assert f"s3://{bucket}/counter.lock: cannot reach the S3 endpoint" in result.stderr
    assert s3.password not in result.stderr and "count is" not in result.stdout


@pytest.mark.parametrize("endpoint", ["localhost:9000", " http://127.0.0.1:9000", "minio"])
def test_an_endpoint_that_is_not_a_url_is_exit_2_naming_the_variable(s3, bucket, pipeline,
                                                                      endpoint):
    counter(pipeline, bucket)
    result = pipeline.run("run", env={"AWS_ENDPOINT_URL": endpoint})
    assert result.returncode == 2, result.stderr
    assert "AWS_ENDPOINT_URL" in result.stderr and "is not an http:// or https:// URL" in result.stderr
    assert "panicked" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) < 5 and "count is" not in result.stdout


def test_the_credentials_are_masked_in_command_output(s3, bucket, pipeline):
    pipeline.step(
        "leak",
        f"""
        state: {{store: s3, bucket: {bucket}, files: [{{path: f}}]}}
        workdir: ../work
        run:
          - script: |
              echo "key=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY"
              echo "endpoint=$AWS_ENDPOINT_URL region=$AWS_REGION"; touch f
        """,
    )
    result = pipeline.run("run", env={"AWS_REGION": "eu-central-7"})
    assert result.returncode == 0, result.stderr
    assert s3.password not in result.stdout + result.stderr
    assert s3.user not in result.stdout + result.stderr
    assert "secret=***" in result.stdout
    # DESIGN: every value the store reads is masked like a secret, endpoint and region too.
    assert "endpoint=*** region=***" in result.stdout


def test_an_s3_step_without_a_bucket_is_exit_2_before_anything_runs(s3, bucket, pipeline):
    pipeline.step(
        "nobucket",
        "state: {store: s3, files: [{path: f}]}\nworkdir: ../work\nrun: [[touch, ran]]",
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "the s3 store needs a bucket" in result.stderr and "s3://BUCKET" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_the_bucket_is_a_template(s3, bucket, pipeline):
    prefix = bucket.removesuffix(bucket[-4:])
    pipeline.step(
        "templated",
        f"""
        state: {{store: s3, bucket: "{prefix}${{{{ inputs.tail }}}}", name: t, files: [{{path: f}}]}}
        inputs: {{tail: {{query: .spec.tail, default: "{bucket[-4:]}"}}}}
        workdir: ../work
        run: [[touch, f]]
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert s3.keys(bucket) == ["t"]


def test_rbac_grants_nothing_for_s3(s3, bucket, pipeline):
    counter(pipeline, bucket)
    result = subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(pipeline.steps)],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no permissions needed" in result.stdout
    assert "configmaps" not in result.stdout and "leases" not in result.stdout


@pytest.mark.slow
def test_concurrent_runs_are_serialised_by_the_lock_with_no_lost_update(s3, bucket, pipeline):
    counter(pipeline, bucket)
    procs = [pipeline.popen("run", "--lock-wait", "60") for _ in range(3)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-500:] for o in outcomes]
    assert stored(s3, bucket) == {"count": b"3\n"}


def test_a_run_killed_holding_the_lock_leaves_it_to_expire_then_it_is_taken(s3, bucket, pipeline):
    # A killed holder's lock object stays until its expiry (RUNNER_LEASE_SECONDS=5 here).
    counter(pipeline, bucket)
    holder = {"holder": "killed-pod/1", "expires": time.time() + 1.5}
    s3.client.put_object(Bucket=bucket, Key="counter.lock", Body=json.dumps(holder).encode())
    result = pipeline.run("run", "--lock-wait", "10")
    assert result.returncode == 0, result.stderr
    assert "count is 1" in result.stdout and "killed-pod/1" in result.stderr


class PreconditionError(Exception):
    """Named as obstore names a failed If-Match / If-None-Match."""


def test_a_save_whose_answer_was_lost_and_retried_is_not_a_conflict(s3, monkeypatch):
    import obstore

    from runner.state import s3 as s3_module

    class LostAnswer:
        """obstore, except that each PUT lands and then fails as the client's retry would."""

        def __getattr__(self, name):
            return getattr(obstore, name)

        def put(self, *args, **kwargs):
            obstore.put(*args, **kwargs)
            raise PreconditionError("412 Precondition Failed")

    bucket = s3.new_bucket()
    store = S3Store(f"//{bucket}", s3.env(), 5)
    ref = StateRef("s", "n", "default")
    monkeypatch.setattr(s3_module, "_obstore", LostAnswer)
    version = store.save(ref, {"a": b"1"}, expected=None)
    monkeypatch.undo()
    loaded = store.load(ref)
    assert loaded is not None and loaded.files == {"a": b"1"} and loaded.version == version
    store.save(ref, {"a": b"theirs"})  # a real conflict is still one
    with pytest.raises(StateChanged):
        store.save(ref, {"a": b"2"}, expected=version)


# -- pure parts ----------------------------------------------------------------------------


def test_locations_parse_into_bucket_and_prefix():
    assert parse_location("//b/p/q/") == ("b", "p/q")
    assert parse_location("//b") == ("b", "")
    assert parse_location(None) == (None, "")


def test_pack_round_trips_and_refuses_what_it_did_not_write():
    files = {"a": b"1", "b": bytes(range(256)), "empty": b""}
    assert unpack(pack(files)) == files
    assert unpack(pack({})) == {}
    for bad in (b"", b"not a state", pack(files)[:-5], pack({"r": os.urandom(100)})[:-1]):
        with pytest.raises(ValueError):
            unpack(bad)


def test_text_is_compressed_and_what_does_not_compress_is_stored_as_is():
    text = {"tfstate": b'{"resources": []}\n' * 10000}
    packed = pack(text)
    assert len(packed) < len(text["tfstate"]) // 10 and unpack(packed) == text
    sealed = {"runner-encrypted-state": os.urandom(300_000)}
    packed = pack(sealed)
    assert unpack_with_header(packed)[1]["compression"] == "none"
    assert len(packed) < 300_000 + 400 and unpack(packed) == sealed


def test_describe_names_bucket_and_key():
    store = S3Store("//bk/pre", {}, 5)
    assert store.describe(StateRef("s", "n", "default")) == "s3://bk/pre/n"
    step_bucket = S3Store(None, {}, 5)
    assert step_bucket.describe(StateRef("s", "n", "default", bucket="own")) == "s3://own/n"


def test_the_option_parses_into_kind_and_location():
    from runner.state import StoreSpec

    assert StoreSpec.parse("s3://bk/teams/a") == StoreSpec("s3", "//bk/teams/a")
    assert parse_location(StoreSpec.parse("s3://bk/teams/a").location) == ("bk", "teams/a")


def test_a_held_lock_is_renewed_and_not_lost_while_the_run_holds_it(s3):
    bucket = s3.new_bucket()
    store = S3Store(f"//{bucket}", s3.env(), 1)  # renewed every third of a second
    ref = StateRef("s", "n", "default")
    with store.lock(ref, 1) as held:
        first = s3.get(bucket, "n.lock")
        time.sleep(1.5)
        assert held.lost_reason() is None
        assert s3.get(bucket, "n.lock") != first  # renewed: a later expiry
    assert s3.keys(bucket) == []


def test_a_lock_taken_by_another_run_is_lost_and_said_so(s3):
    bucket = s3.new_bucket()
    store = S3Store(f"//{bucket}", s3.env(), 1)
    ref = StateRef("s", "n", "default")
    with store.lock(ref, 1) as held:
        taker = {"holder": "other-pod/2", "expires": time.time() + 60}
        s3.client.put_object(Bucket=bucket, Key="n.lock", Body=json.dumps(taker).encode())
        deadline = time.monotonic() + 5
        while held.lost_reason() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "other-pod/2 took it" in (held.lost_reason() or "")
    assert s3.keys(bucket) == ["n.lock"]  # theirs, left alone
