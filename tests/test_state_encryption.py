"""State encrypted at rest (`state.encryption`), for every store: real keys through `runner
run`, wrong keys, truncated and altered ciphertext, key rotation and plaintext migration; the
new fields under `runner validate`; and `runner pipeline` naming the variables they read."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.base.errors import StoreError
from runner.state import open_store
from runner.state.base import StateRef
from runner.state.encryption import (
    ENTRY,
    MAGIC,
    EncryptedStore,
    Keys,
    StateKey,
    key_id,
    seal,
    unseal,
)
from tests.conftest import Pipeline
from tests.test_validate import invalid, step, validate

KEY = base64.b64encode(b"A" * 32).decode()
OLD_KEY = base64.b64encode(b"B" * 32).decode()
OTHER_KEY = base64.b64encode(b"C" * 32).decode()

COUNTER = """
    state:
      name: counter
      files: [{path: count.txt, key: count}]
      encryption: {encryption}
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          echo $((n + 1)) > count.txt
          echo "count is $((n + 1))"
"""
REF = StateRef("counter", "counter", "default", "my-app", "default")


def counter(pipeline: Pipeline, encryption: str = "{key: {env: STATE_KEY}}") -> None:
    pipeline.step("counter", COUNTER.replace("{encryption}", encryption))


def stored(pipeline: Pipeline) -> dict[str, bytes] | None:
    loaded = open_store("local", str(pipeline.state_dir), {}).load(REF)
    return None if loaded is None else loaded.files


def state_bytes(pipeline: Pipeline) -> dict[str, bytes]:
    """Every file of the local store's folder for the state, byte for byte (not the lock)."""
    root = pipeline.state_dir / "default" / "counter"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_state_is_encrypted_at_rest_and_restored_with_the_key(pipeline):
    counter(pipeline)
    for expected in (1, 2):
        result = pipeline.run("run", env={"STATE_KEY": KEY})
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
    files = stored(pipeline)
    assert files is not None and set(files) == {ENTRY}
    blob = files[ENTRY]
    assert blob.startswith(MAGIC) and b"count" not in blob and b"2\n" not in blob
    assert blob[9:17] == key_id(base64.b64decode(KEY))  # the key's id, not the key
    assert base64.b64decode(KEY) not in blob
    shown = pipeline.run("state", "show", "counter", "--key", "count", env={"STATE_KEY": KEY})
    assert shown.returncode == 0 and shown.stdout == "2\n", shown.stderr


def test_each_save_uses_a_fresh_nonce():
    key = StateKey(b"k" * 32, "test")
    first, second = seal({"a": b"same"}, key), seal({"a": b"same"}, key)
    assert first != second and first[17:29] != second[17:29]


def test_a_wrong_key_is_exit_3_before_any_command_and_leaves_the_state_as_it_was(pipeline):
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": KEY}).returncode == 0
    before = state_bytes(pipeline)
    result = pipeline.run("run", env={"STATE_KEY": OTHER_KEY})
    assert result.returncode == 3, result.stderr
    assert "no configured key has" in result.stderr and "fallbackKeys" in result.stderr
    assert "count is" not in result.stdout
    assert state_bytes(pipeline) == before
    assert KEY not in result.stderr and OTHER_KEY not in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped", "header cut"])
def test_damaged_ciphertext_is_exit_3_and_never_read_as_no_state(pipeline, damage):
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": KEY}).returncode == 0
    blob = bytearray((stored(pipeline) or {})[ENTRY])
    if damage == "truncated":
        blob = blob[:-7]
    elif damage == "bit-flipped":
        blob[len(blob) // 2] ^= 0x01
    else:
        blob = blob[:20]
    open_store("local", str(pipeline.state_dir), {}).save(REF, {ENTRY: bytes(blob)})
    before = state_bytes(pipeline)
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 3, result.stderr
    assert "count is" not in result.stdout
    assert "altered or cut short" in result.stderr or "cut short" in result.stderr
    assert state_bytes(pipeline) == before


def test_plaintext_state_is_refused_without_allow_plaintext(pipeline):
    open_store("local", str(pipeline.state_dir), {}).save(REF, {"count": b"5\n"})
    before = state_bytes(pipeline)
    counter(pipeline)
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 3, result.stderr
    assert "is not encrypted" in result.stderr and "allowPlaintext: true" in result.stderr
    assert "count is" not in result.stdout
    assert state_bytes(pipeline) == before


def test_plaintext_is_migrated_once_with_allow_plaintext(pipeline):
    open_store("local", str(pipeline.state_dir), {}).save(REF, {"count": b"5\n"})
    counter(pipeline, "{key: {env: STATE_KEY}, allowPlaintext: true}")
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert "count is 6" in result.stdout
    assert set(stored(pipeline) or {}) == {ENTRY}  # written encrypted
    counter(pipeline)  # allowPlaintext removed again: the migrated state reads
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 0 and "count is 7" in result.stdout, result.stderr


def test_rotation_reads_with_a_fallback_key_and_writes_with_the_new_one(pipeline):
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": OLD_KEY}).returncode == 0
    counter(pipeline, "{key: {env: STATE_KEY}, fallbackKeys: [{env: STATE_KEY_OLD}]}")
    result = pipeline.run("run", env={"STATE_KEY": KEY, "STATE_KEY_OLD": OLD_KEY})
    assert result.returncode == 0 and "count is 2" in result.stdout, result.stderr
    blob = (stored(pipeline) or {})[ENTRY]
    assert blob[9:17] == key_id(base64.b64decode(KEY))
    counter(pipeline)  # the old key retired: the state opens with the new key alone
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 0 and "count is 3" in result.stdout, result.stderr


UNCHANGED = """
    state:
      name: counter
      files: [{path: count.txt, key: count}]
      encryption: {encryption}
    workdir: ../work
    run: [[cat, count.txt]]
"""


def test_an_unchanged_state_under_a_fallback_key_is_written_again_with_the_new_key(pipeline):
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": OLD_KEY}).returncode == 0
    encryption = "{key: {env: STATE_KEY}, fallbackKeys: [{env: STATE_KEY_OLD}]}"
    pipeline.step("counter", UNCHANGED.replace("{encryption}", encryption))
    result = pipeline.run("run", env={"STATE_KEY": KEY, "STATE_KEY_OLD": OLD_KEY})
    assert result.returncode == 0 and result.stdout == "1\n", result.stderr
    assert (stored(pipeline) or {})[ENTRY][9:17] == key_id(base64.b64decode(KEY))
    again = pipeline.run("run", env={"STATE_KEY": KEY, "STATE_KEY_OLD": OLD_KEY})
    assert "state unchanged: not saved again" in again.stderr  # under the new key: left alone


def test_an_unchanged_plaintext_state_is_migrated_by_one_run(pipeline):
    open_store("local", str(pipeline.state_dir), {}).save(REF, {"count": b"5\n"})
    encryption = "{key: {env: STATE_KEY}, allowPlaintext: true}"
    pipeline.step("counter", UNCHANGED.replace("{encryption}", encryption))
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 0 and result.stdout == "5\n", result.stderr
    assert set(stored(pipeline) or {}) == {ENTRY}


def test_a_key_from_a_file(pipeline, tmp_path):
    key_file = tmp_path / "state.key"
    key_file.write_text(KEY + "\n")
    counter(pipeline, f"{{key: {{file: {key_file}}}}}")
    result = pipeline.run("run")
    assert result.returncode == 0 and "count is 1" in result.stdout, result.stderr


@pytest.mark.parametrize("value", [base64.b64encode(b"short").decode(), "not base64 at all!", ""])
def test_a_key_of_the_wrong_length_is_exit_2_naming_its_source_never_the_key(pipeline, value):
    counter(pipeline)
    result = pipeline.run("run", env={"STATE_KEY": value})
    assert result.returncode == 2, result.stderr
    assert "environment variable STATE_KEY" in result.stderr
    assert "count is" not in result.stdout
    if value.strip():
        assert value not in result.stderr


def test_a_missing_key_file_is_exit_2_naming_the_file(pipeline, tmp_path):
    counter(pipeline, f"{{key: {{file: {tmp_path / 'nope.key'}}}}}")
    result = pipeline.run("run")
    assert result.returncode == 2
    assert f"file {tmp_path / 'nope.key'} does not exist" in result.stderr


def test_the_key_is_masked_in_command_output(pipeline):
    pipeline.step(
        "leak",
        """
        state: {files: [{path: f}], encryption: {key: {env: STATE_KEY}}}
        workdir: ../work
        run:
          - script: echo "the key is $STATE_KEY"; touch f
        """,
    )
    result = pipeline.run("run", env={"STATE_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert KEY not in result.stdout + result.stderr and "the key is ***" in result.stdout


def test_plan_says_the_state_is_encrypted_and_its_bucket(pipeline):
    pipeline.step(
        "p",
        """
        state: {store: s3, bucket: my-bucket, files: [{path: f}], encryption: {key: {env: STATE_KEY}}}
        run: [[true]]
        """,
    )
    result = pipeline.run("plan", "--format", "json", "--state-store", "", env={"STATE_KEY": KEY})
    assert result.returncode == 0, result.stderr
    [planned] = json.loads(result.stdout)
    assert planned["state"]["bucket"] == "my-bucket" and planned["state"]["encrypted"] is True


# -- the layer in process ------------------------------------------------------------------


def test_unseal_names_the_key_ids_and_never_the_keys():
    new, old = StateKey(b"n" * 32, "environment variable NEW"), StateKey(b"o" * 32, "file /k")
    blob = seal({"a": b"1"}, old)
    assert unseal(blob, Keys(new, (old,)), "here") == {"a": b"1"}
    with pytest.raises(StoreError) as info:
        unseal(blob, Keys(new), "here")
    message = str(info.value)
    assert key_id(b"o" * 32).hex() in message and "environment variable NEW" in message
    assert "nnnn" not in message and "oooo" not in message


def test_an_encrypted_store_keeps_versions_and_conflicts_of_the_store_below(tmp_path: Path):
    keys = Keys(StateKey(b"k" * 32, "test"))
    plain = open_store("local", str(tmp_path), {})
    store = EncryptedStore(plain, keys)
    version = store.save(REF, {"a": b"1"}, expected=None)
    loaded = store.load(REF)
    assert loaded is not None and loaded.files == {"a": b"1"} and loaded.version == version


# -- runner validate -----------------------------------------------------------------------


def test_validate_accepts_the_new_fields(tmp_path):
    spec = """
        run: [[echo]]
        state:
          store: s3
          bucket: "${{ inputs.name }}-state"
          files: [{path: x}]
          encryption:
            key: {env: STATE_KEY}
            fallbackKeys: [{file: /keys/old}]
            allowPlaintext: true
        inputs: {name: {query: .metadata.name}}
    """
    (tmp_path / "a.yaml").write_text(step(spec=spec))
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


def test_validate_a_misspelt_encryption_field_says_did_you_mean(tmp_path):
    spec = (
        "run: [[echo]]\nstate: {files: [{path: x}], encryption: {key: {env: K}, fallbackKey: []}}\n"
    )
    result = invalid(tmp_path, step(spec=spec))
    assert any(
        "spec.state.encryption" in line and "fallbackKey" in line for line in result.lines
    ), result.err
    assert 'did you mean "fallbackKeys"?' in result.err


def test_validate_a_key_with_both_or_neither_source_is_located(tmp_path):
    spec = "run: [[echo]]\nstate: {files: [{path: x}], encryption: {key: {}}}\n"
    result = invalid(tmp_path, step(spec=spec))
    assert "a.yaml:7:" in result.err and "spec.state.encryption.key" in result.err


def test_validate_encryption_needs_a_key(tmp_path):
    spec = "run: [[echo]]\nstate: {files: [{path: x}], encryption: {allowPlaintext: true}}\n"
    result = invalid(tmp_path, step(spec=spec))
    assert "spec.state.encryption" in result.err and "key" in result.err


def test_validate_a_bucket_for_a_store_without_buckets(tmp_path):
    spec = "run: [[echo]]\nstate: {store: configmap, bucket: b, files: [{path: x}]}\n"
    result = invalid(tmp_path, step(spec=spec))
    result.has(
        'a.yaml:7:37: spec.state.bucket: store "configmap" keeps no bucket: bucket is for the '
        "s3 store",
        'use "store: s3", or remove "bucket"',
    )


def test_validate_encryption_with_store_none(tmp_path):
    spec = "run: [[echo]]\nstate: {store: none, encryption: {key: {env: K}}}\n"
    result = invalid(tmp_path, step(spec=spec))
    assert 'spec.state.encryption: store "none" keeps nothing to encrypt' in result.err


def test_validate_a_misspelt_bucket_says_did_you_mean(tmp_path):
    spec = "run: [[echo]]\nstate: {store: s3, bukket: b, files: [{path: x}]}\n"
    result = invalid(tmp_path, step(spec=spec))
    assert "a.yaml:7:" in result.err and 'did you mean "bucket"?' in result.err


def test_validate_the_s3_store_is_in_the_enum_with_did_you_mean(tmp_path):
    spec = "run: [[echo]]\nstate: {store: s3s, files: [{path: x}]}\n"
    result = invalid(tmp_path, step(spec=spec))
    assert '"s3"' in result.err and "did you mean" in result.err


def test_validate_a_bad_template_in_bucket_is_located(tmp_path):
    spec = 'run: [[echo]]\nstate: {store: s3, bucket: "${{ inputz.x }}", files: [{path: x}]}\n'
    result = invalid(tmp_path, step(spec=spec))
    assert "spec.state.bucket" in result.err and "a.yaml:7:" in result.err


# -- runner pipeline -----------------------------------------------------------------------


def test_pipeline_gives_aws_and_key_variables_from_the_steps_secrets(pipeline):
    pipeline.step(
        "s3",
        """
        secrets:
          AWS_ACCESS_KEY_ID: {env: AWS_ACCESS_KEY_ID, secretKeyRef: {name: s3-creds, key: id}}
          AWS_SECRET_ACCESS_KEY: {env: AWS_SECRET_ACCESS_KEY, secretKeyRef: {name: s3-creds, key: secret}}
          STATE_KEY: {env: STATE_KEY, secretKeyRef: {name: state-key, key: key}}
        state:
          store: s3
          bucket: platform-state
          files: [{path: x}]
          encryption: {key: {env: STATE_KEY}}
        run: [[true]]
        """,
    )
    result = subprocess.run(
        [sys.executable, "-m", "runner", "pipeline", "--image", "img:1", "s3",
         "--steps-dir", str(pipeline.steps)],
        env=pipeline.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    [container] = document["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    assert names == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STATE_KEY"]
    assert container["env"][0]["valueFrom"] == {"secretKeyRef": {"name": "s3-creds", "key": "id"}}
    assert "rbac" not in document["spec"]  # nothing to grant for s3
    # The variables no secret gives are named, for the operator to set.
    assert "AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL" in result.stderr


def test_environment_keys_are_not_set_in_this_process():
    assert "STATE_KEY" not in os.environ


ROTATING = "{key: {env: STATE_KEY}, fallbackKeys: [{env: STATE_KEY_OLD}]}"


def test_state_show_without_the_old_key_says_which_key_a_state_still_needs(pipeline):
    """Rotation, step 2 (docs/stores.md): `state show` without the old key set tells whether
    a state still needs it, instead of listing the sealed entry as if it were the state."""
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": OLD_KEY}).returncode == 0
    counter(pipeline, ROTATING)
    show = pipeline.run("state", "show", "counter", env={"STATE_KEY": KEY})
    assert show.returncode == 3, show.stderr
    assert "STATE_KEY_OLD is not set" in show.stderr  # a warning first
    assert f"encrypted with key id {key_id(base64.b64decode(OLD_KEY)).hex()}" in show.stderr
    assert ENTRY not in show.stdout and OLD_KEY not in show.stderr + show.stdout
    assert pipeline.run("run", env={"STATE_KEY": KEY, "STATE_KEY_OLD": OLD_KEY}).returncode == 0
    show = pipeline.run("state", "show", "counter", env={"STATE_KEY": KEY})
    assert show.returncode == 0 and "count: 2 bytes" in show.stdout, show.stderr


def test_state_show_with_no_key_set_refuses_to_list_the_sealed_entry(pipeline):
    counter(pipeline)
    assert pipeline.run("run", env={"STATE_KEY": KEY}).returncode == 0
    show = pipeline.run("state", "show", "counter")
    assert show.returncode == 3
    assert "is encrypted, and none of the step's state keys is set" in show.stderr
    assert ENTRY not in show.stdout


def test_state_show_key_masks_the_secrets_set_and_raw_prints_the_exact_bytes(pipeline):
    pipeline.step(
        "keeper",
        """
        secrets: {TOKEN: {env: TOKEN}}
        state: {name: keeper, files: [{path: t.json}]}
        workdir: ../work
        run: [[sh, -c, 'printf "{\\"token\\": \\"%s\\"}" "$TOKEN" > t.json']]
        """,
    )
    token = "tok-3f9a7c1e55"
    assert pipeline.run("run", env={"TOKEN": token}).returncode == 0
    shown = pipeline.run("state", "show", "keeper", "--key", "t.json", env={"TOKEN": token})
    assert shown.returncode == 0 and token not in shown.stdout and "token" in shown.stdout
    raw = pipeline.run("state", "show", "keeper", "--key", "t.json", "--raw", env={"TOKEN": token})
    assert raw.returncode == 0 and raw.stdout == f'{{"token": "{token}"}}'
