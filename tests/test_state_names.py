"""State names and every name a store derives from them: the main object, chunk objects
(`NAME-GENERATION-INDEX`, index up to MAX_CHUNKS - 1), the Lease, and label values. A name is
accepted only if all of them are valid: `validate` says so at the name for a fixed one, `run`
after rendering a templated one, before any command of any step."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.state import store_class
from runner.state.base import StateRef, is_label_value, label_value
from runner.state.configmap_secret import ConfigMapStore, SecretStore
from runner.state.kubeapi import Kube, load_client
from tests.conftest import runner_in_process, use_kube_api

LONGEST = 231  # 253 - len("-") - 16 (generation) - len("-") - 4 (index up to 9999)


@pytest.mark.parametrize("kind", ["configmap", "secret"])
def test_a_kubernetes_store_takes_names_whose_chunk_names_fit(kind):
    rule = store_class(kind)
    assert rule.name_problem("a" * LONGEST) is None
    problem = rule.name_problem("a" * (LONGEST + 1))
    assert problem is not None and "use at most 231" in problem and "NAME-GENERATION-INDEX" in problem
    assert rule.name_problem("a" * 253) is not None  # a valid object name, its chunks not
    assert rule.name_problem("a" * 254) is not None
    assert rule.name_problem("Bad_Name") is not None


@pytest.mark.parametrize("text", ["counter", "a" * 63, "my-app.v2_x", "", "A1"])
def test_a_valid_label_value_is_kept_exactly(text):
    assert label_value(text) == text


@given(st.text(max_size=300))
def test_every_text_makes_a_valid_stable_label_value(text):
    value = label_value(text)
    assert is_label_value(value) and len(value) <= 63
    assert value == label_value(text)


def test_long_names_make_distinct_label_values_that_keep_their_start():
    a, b = "x" * 200 + "a", "x" * 200 + "b"
    assert label_value(a) != label_value(b)
    assert label_value(a).startswith("x" * 40)
    assert label_value("-" * 100) == label_value("-" * 100) and is_label_value(label_value("_" * 80))


def test_validate_reports_a_fixed_name_too_long_for_the_chunks_at_the_name(pipeline):
    pipeline.step("long", f"""
        state: {{store: secret, name: {"a" * (LONGEST + 4)}, files: [{{path: x}}]}}
        run: [[echo]]
    """)  # fmt: skip
    pipeline.step("bad", """
        state: {name: Bad_Name, files: [{path: x}]}
        run: [[echo]]
    """)  # fmt: skip
    pipeline.step("fine", f"""
        state: {{store: configmap, name: {"a" * LONGEST}, files: [{{path: x}}]}}
        run: [[echo]]
    """)  # fmt: skip
    result = runner_in_process(["validate", str(pipeline.steps)], pipeline.work, pipeline.env)
    assert result.returncode == 2, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert re.search(r"long\.yaml:\d+:\d+: spec\.state\.name: state name \"a{235}\" is 235 "
                     r"characters long: the secret store names its chunk objects", out), out
    assert re.search(r'bad\.yaml:\d+:\d+: spec\.state\.name: state name "Bad_Name" is not', out)
    assert "fine.yaml" not in out


def test_a_templated_name_too_long_stops_the_run_before_any_command(pipeline):
    marker = pipeline.root / "ran"
    pipeline.step("first", f"run: [[touch, {marker}]]")
    pipeline.step("second", f"""
        state:
          store: configmap
          name: "${{{{ kratix.object.name }}}}-{"a" * 230}"
          files: [{{path: x}}]
        run: [[echo]]
    """)  # fmt: skip
    result = pipeline.run("run", env={"RUNNER_STATE_STORE": "configmap"})
    assert result.returncode == 2, result.stderr
    assert "state name \"my-app-" in result.stderr and "use at most 231" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("length", [63, 64, 100, LONGEST])
@pytest.mark.parametrize("cls", [ConfigMapStore, SecretStore])
def test_a_chunked_state_with_a_long_name_saves_loads_and_sweeps(api, tmp_path, cls, length):
    """Chunk labels that fit 63 characters whatever the name: the API server refuses longer
    ones (as a real one does). The sweep still finds a killed save's chunks by that label."""
    config = api.write_kubeconfig(tmp_path / "kubeconfig")
    store = cls(Kube(load_client({"KUBECONFIG": str(config)}), attempts=2, backoff=0.05), "me", 5)
    ref = StateRef("s", "n" * length, "default", "o" * 200, "default")
    files = {"big": random.Random(length).randbytes(1_200_000)}
    with store.lock(ref, 5):
        store.save(ref, files)
        assert store.load(ref).files == files
        resource = cls.object_kind.resource
        objects = api.objects(resource, "default")
        chunks = [n for n in objects if n.startswith(ref.name + "-")]
        assert len(chunks) == 2
        label = objects[chunks[0]]["metadata"]["labels"]["runner.kratix.dev/chunk-of"]
        assert label == (ref.name if length <= 63 else label_value(ref.name))
        assert len(label) <= 63
        # A chunk a killed save left, labelled as this version labels: swept by the next save.
        orphan = dict(objects[chunks[0]], metadata={
            "name": f"{ref.name}-0123456789abcdef-0", "namespace": "default",
            "labels": {"runner.kratix.dev/chunk-of": label}})  # fmt: skip
        api.put_object(resource, "default", orphan)
        store.save(ref, {"big": files["big"][::-1]})
    left = [n for n in api.objects(resource, "default") if n.startswith(ref.name + "-")]
    assert len(left) == 2 and f"{ref.name}-0123456789abcdef-0" not in left


def test_short_names_keep_their_exact_labels(api, pipeline):
    kube = api
    use_kube_api(pipeline, kube, lease_seconds=5)
    pipeline.step("counter", """
        state: {store: configmap, name: counter, files: [{path: big.bin}]}
        workdir: ../work
        run:
          - script: head -c 1200000 /dev/urandom > big.bin
    """)  # fmt: skip
    assert pipeline.run("run").returncode == 0
    objects = kube.objects("configmaps", "default")
    chunk = next(o for n, o in objects.items() if n.startswith("counter-"))
    assert chunk["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kratix-step-runner",
        "runner.kratix.dev/step": "counter",
        "runner.kratix.dev/object-name": "my-app",
        "runner.kratix.dev/object-namespace": "default",
        "runner.kratix.dev/chunk-of": "counter",
    }


def test_a_state_past_the_most_chunks_is_a_store_error(api, tmp_path, monkeypatch):
    """The chunk count is capped (so chunk names have a known longest form): a state past it
    is refused as a store error (exit 3), and the state stored before is kept."""
    from runner.base.errors import StoreError
    from runner.state.codec import chunks

    monkeypatch.setattr(chunks, "MAX_CHUNKS", 1)
    config = api.write_kubeconfig(tmp_path / "kubeconfig")
    store = ConfigMapStore(Kube(load_client({"KUBECONFIG": str(config)}), attempts=2), "me", 5)
    ref = StateRef("s", "capped", "default")
    store.save(ref, {"small": b"1"})
    with pytest.raises(StoreError, match="too large: more than 1 chunk objects"):
        store.save(ref, {"big": random.Random(1).randbytes(1_200_000)})
    assert store.load(ref).files == {"small": b"1"}


def test_the_local_store_keeps_room_for_its_lock_file_name() -> None:
    from runner.state.local import LocalStore

    assert LocalStore.name_problem("a" * 248) is None
    problem = LocalStore.name_problem("a" * 249)
    assert problem is not None and "NAME.lock" in problem and "use at most 248" in problem
