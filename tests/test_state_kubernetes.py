"""ConfigMap and Secret state stores against the loopback API server, through `runner run`
where the behaviour is the user's and in-process where the edge needs steering.

With RUNNER_TEST_KUBECONFIG set, the in-process store tests also run against that cluster
(e.g. `kind create cluster` then `RUNNER_TEST_KUBECONFIG=~/.kube/config make test`).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import time

import pytest
import yaml

from runner.base.errors import StoreError
from runner.state.base import StateRef
from runner.state.configmap_secret import ConfigMapStore, SecretStore
from runner.state.kubeapi import Kube, load_client
from tests.conftest import hold_lease, use_kube_api

COUNTER = """
    state:
      store: {store}
      name: counter
      files: [{path: count.txt, key: count}]
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          {pause}
          echo $((n + 1)) > count.txt
          echo "count is $((n + 1))"
"""


@pytest.fixture
def kube(api, pipeline):
    """The pipeline talks to the loopback API server; state goes where the step says."""
    return use_kube_api(pipeline, api, lease_seconds=5)


def counter(pipeline, store: str = "configmap", pause: str = "") -> None:
    pipeline.step("counter", COUNTER.replace("{store}", store).replace("{pause}", pause))


def open_store(api, tmp_path, cls=ConfigMapStore, lease_seconds: int = 5):
    config = api.write_kubeconfig(tmp_path / "kubeconfig-inproc")
    return cls(
        Kube(load_client({"KUBECONFIG": str(config)}), attempts=4, backoff=0.05),
        "test-holder",
        lease_seconds,
    )


REF = StateRef("counter", "counter", "default", "my-app", "default")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["configmap", "secret"])
def test_round_trip_through_runner_run(kube, pipeline, store):
    counter(pipeline, store)
    for expected in (1, 2, 3):
        result = pipeline.run("run")
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
    resource = "configmaps" if store == "configmap" else "secrets"
    obj = kube.get_object(resource, "default", "counter")
    if store == "configmap":
        assert obj["data"]["count"] == "3\n"  # readable with kubectl -o jsonpath={.data.count}
    else:
        assert base64.b64decode(obj["data"]["count"]) == b"3\n"
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "kratix-step-runner",
        "runner.kratix.dev/step": "counter",
        "runner.kratix.dev/object-name": "my-app",
        "runner.kratix.dev/object-namespace": "default",
    }
    lease = kube.get_object("leases", "default", "counter")
    assert lease["spec"].get("holderIdentity") is None  # released at the end


def test_saves_update_with_resource_version_never_delete_and_recreate(kube, pipeline):
    counter(pipeline)
    pipeline.run("run")
    uid = kube.get_object("configmaps", "default", "counter")["metadata"]["uid"]
    kube.reset_counts()
    pipeline.run("run")
    assert kube.count("DELETE", "/configmaps/") == 0
    assert kube.count("PUT", "/configmaps/counter", 200) == 1
    assert kube.get_object("configmaps", "default", "counter")["metadata"]["uid"] == uid


# A save over a newer state raises StateChanged: tests/test_store_contract.py, for every store.


def test_a_metadata_only_change_in_between_is_retried_and_saved(kube, tmp_path):
    store = open_store(kube, tmp_path)
    store.save(REF, {"count": b"1"})
    read = store.load(REF)
    obj = kube.get_object("configmaps", "default", "counter")
    obj["metadata"]["labels"]["team"] = "platform"  # an operator labels it meanwhile
    kube.put_object("configmaps", "default", obj)
    store.save(REF, {"count": b"2"}, expected=read.version)
    assert open_store(kube, tmp_path).load(REF).files == {"count": b"2"}


@pytest.mark.parametrize("size_mib", [3, pytest.param(30, marks=pytest.mark.slow)])
@pytest.mark.parametrize("cls", [ConfigMapStore, SecretStore])
def test_large_state_round_trips_byte_identical(kube, tmp_path, size_mib, cls):
    rng = random.Random(size_mib)
    resources = [
        {"type": "minio_s3_bucket", "name": f"b{i}", "id": rng.getrandbits(128)}
        for i in range(size_mib * 9000)
    ]
    text = json.dumps({"version": 4, "resources": resources}, indent=2).encode()[: size_mib << 20]
    noise = rng.randbytes(512 * 1024)  # incompressible part
    files = {"tfstate": text, "plugin.bin": noise}
    store = open_store(kube, tmp_path, cls)
    store.save(REF, files)
    assert open_store(kube, tmp_path, cls).load(REF).files == files
    resource = "configmaps" if cls is ConfigMapStore else "secrets"
    stored = kube.objects(resource, "default")
    # The objects each keep under the API server's 1 MiB limit (the server enforces it too).
    assert len(stored) >= 2 if size_mib == 30 else len(stored) >= 1
    # A second save of other content replaces the chunks and leaves no orphans behind.
    smaller = {"tfstate": b"{}"}
    store.save(REF, smaller)
    assert open_store(kube, tmp_path, cls).load(REF).files == smaller
    assert list(kube.objects(resource, "default")) == ["counter"]


def test_the_chunk_sweep_deletes_only_this_states_chunks_whatever_the_list_returns(
    kube, pipeline
):
    pipeline.step("counter", """
        state: {store: configmap, name: counter, files: [{path: big.bin}]}
        workdir: ../work
        run:
          - script: head -c 3000000 /dev/urandom > big.bin
    """)  # fmt: skip
    assert pipeline.run("run").returncode == 0
    first = json.loads(kube.get_object("configmaps", "default", "counter")["data"]["manifest"])

    def seed(name: str, labels: dict[str, str]) -> None:
        metadata = {"name": name, "namespace": "default", "labels": labels}
        kube.put_object("configmaps", "default", {"metadata": metadata, "data": {"k": "v"}})

    ours = {"runner.kratix.dev/chunk-of": "counter"}
    seed("app-settings", {})
    seed("counter-settings", {})
    seed("counter-0123456789abcdef-0", {})  # named like a chunk of ours, not labelled as one
    seed("precious", ours)  # labelled as ours, not named like a chunk
    seed("other-0123456789abcdef-0", {"runner.kratix.dev/chunk-of": "other"})
    seed("counter-fedcba9876543210-1", ours)  # a chunk left by a killed save: swept
    unrelated = ["app-settings", "counter-settings", "counter-0123456789abcdef-0", "precious",
                 "other-0123456789abcdef-0"]  # fmt: skip
    kube.ignore_label_selector = True  # a proxy or an old server: list returns everything
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    left = kube.objects("configmaps", "default")
    assert all(name in left for name in unrelated), sorted(left)
    manifest = json.loads(left["counter"]["data"]["manifest"])
    assert manifest["generation"] != first["generation"]
    chunks = [f"counter-{manifest['generation']}-{i}" for i in range(manifest["chunks"])]
    assert sorted(left) == sorted([*unrelated, "counter", *chunks])


@pytest.mark.slow
def test_two_concurrent_runs_are_serialised_with_no_lost_update(kube, pipeline):
    counter(pipeline, pause="sleep 0.3")
    procs = [pipeline.popen("run") for _ in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-500:] for o in outcomes]
    assert kube.get_object("configmaps", "default", "counter")["data"]["count"] == "4\n"


def test_a_lease_of_a_killed_holder_is_taken_over_once_expired(kube, pipeline):
    counter(pipeline)
    hold_lease(kube, "counter", "killed-pod/1", seconds=2)
    started = time.monotonic()
    result = pipeline.run("run", "--lock-wait", "20")
    assert result.returncode == 0, result.stderr
    assert 1.0 < time.monotonic() - started < 15
    spec = kube.get_object("leases", "default", "counter")["spec"]
    assert spec["leaseTransitions"] == 1


def test_a_live_holder_makes_the_run_ask_kratix_to_retry_and_exit_0(kube, pipeline):
    counter(pipeline)
    hold_lease(kube, "counter", "busy-pod/7", seconds=300)
    result = pipeline.run("run", "--lock-wait", "0.5")
    assert result.returncode == 0, result.stderr
    assert "is held by busy-pod/7" in result.stderr
    control = yaml.safe_load((pipeline.metadata / "workflow-control.yaml").read_text())
    # Until the holder's lease expires, as a Go duration: `4m59s`.
    minutes, seconds = re.fullmatch(r"(?:([0-9]+)m)?(?:([0-9]+)s)?", control["retryAfter"]).groups()
    assert 5 <= int(minutes or 0) * 60 + int(seconds or 0) <= 301
    assert "busy-pod/7" in control["message"]
    assert not (pipeline.work / "count.txt").exists() or "count is" not in result.stdout


def test_forbidden_names_verb_resource_namespace_and_user_and_exits_3(kube, pipeline):
    counter(pipeline)
    kube.forbid("get", "configmaps")
    result = pipeline.run("run")
    assert result.returncode == 3
    assert (
        "forbidden: system:serviceaccount:default:app-resource-pipeline cannot get configmaps "
        'in namespace "default"'
    ) in result.stderr
    assert "rbac" in result.stderr and "resources: [configmaps]" in result.stderr
    assert "count is" not in result.stdout


def test_forbidden_leases_is_explained_too(kube, pipeline):
    counter(pipeline)
    kube.forbid("create", "leases")
    result = pipeline.run("run")
    assert result.returncode == 3
    assert 'cannot create leases in namespace "default"' in result.stderr
    assert 'apiGroups: ["coordination.k8s.io"]' in result.stderr


def test_unprocessable_object_is_explained_with_exit_3(kube, tmp_path):
    store = open_store(kube, tmp_path)
    with pytest.raises(StoreError, match="refused") as info:
        store.save(StateRef("x", "Bad_Name", "default"), {"k": b"v"})
    assert "DNS-1123" in str(info.value)


TWO_FILES = """
    state:
      store: {store}
      name: counter
      lock: {lock}
      files: [{path: "my state.tfstate"}, {path: count.txt, key: count}]
    workdir: ../work
    run:
      - script: echo tf > "my state.tfstate"; echo 1 > count.txt
"""


def test_a_key_kubernetes_cannot_hold_stops_the_run_before_any_command(kube, pipeline):
    # Valid for the local store the step names; --state-store puts it in a ConfigMap.
    pipeline.step("s", TWO_FILES.replace("{store}", "local").replace("{lock}", "true"))
    result = pipeline.run("run", "--state-store", "configmap")
    assert result.returncode == 2, result.stderr
    assert (
        'spec.state.files[0].path: the configmap store cannot keep state file my state.tfstate '
        'under the key "my state.tfstate"'
    ) in result.stderr
    assert 'hint: give the file an explicit key, e.g. "key: my-state.tfstate"' in result.stderr
    assert kube.get_object("configmaps", "default", "counter") is None


@pytest.mark.parametrize("status", [413, 422, 403])
def test_a_save_the_api_refuses_exits_3_naming_the_state_object_and_the_files(
    kube, pipeline, status
):
    pipeline.step("s", TWO_FILES.replace("{store}", "configmap").replace("{lock}", "false")
                  .replace('{path: "my state.tfstate"}, ', ""))  # fmt: skip
    if status == 403:
        kube.forbid("create", "configmaps")
    else:
        kube.fail(rate=1.0, status=status, only=["create"])
    result = pipeline.run("run")
    assert result.returncode == 3, result.stderr
    assert "could not save count.txt to configmap default/counter: " in result.stderr
    assert kube.get_object("configmaps", "default", "counter") is None


@pytest.mark.slow
def test_transient_503s_are_survived(kube, pipeline):
    counter(pipeline)
    kube.fail(rate=0.3, status=503, seed=7)
    for _ in range(3):
        result = pipeline.run("run")
        assert result.returncode == 0, result.stderr
    kube.fail()
    assert kube.get_object("configmaps", "default", "counter")["data"]["count"] == "3\n"


def test_an_unavailable_api_exits_3_after_bounded_retries(kube, pipeline):
    counter(pipeline)
    kube.fail(rate=1.0, status=503)
    started = time.monotonic()
    result = pipeline.run("run", env={"RUNNER_KUBE_ATTEMPTS": "3"})
    assert result.returncode == 3
    assert "did not answer" in result.stderr and "after 3 attempts" in result.stderr
    assert time.monotonic() - started < 20


def test_missing_kubeconfig_exits_3_with_a_hint(pipeline, tmp_path):
    counter(pipeline)
    pipeline.env.pop("RUNNER_STATE_STORE")
    result = pipeline.run("run", env={"KUBECONFIG": str(tmp_path / "nope")})
    assert result.returncode == 3
    assert "no Kubernetes configuration" in result.stderr and "--state-store local" in result.stderr


def test_delete_step_removes_state_objects_and_lease(kube, pipeline):
    counter(pipeline)
    pipeline.step(
        "forget",
        """
        on: {action: delete}
        state: {store: configmap, name: counter, files: [{path: count.txt, key: count}], onDelete: remove}
        workdir: ../work
        run: [[cat, count.txt]]
    """,
    )
    assert pipeline.run("run").returncode == 0
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert kube.get_object("configmaps", "default", "counter") is None
    assert kube.get_object("leases", "default", "counter") is None


@pytest.mark.skipif(
    not os.environ.get("RUNNER_TEST_KUBECONFIG"), reason="RUNNER_TEST_KUBECONFIG not set"
)
def test_round_trip_against_a_real_cluster(tmp_path):
    config = os.environ["RUNNER_TEST_KUBECONFIG"]
    store = ConfigMapStore(Kube(load_client({"KUBECONFIG": config})), "test-holder", 5)
    ref = StateRef(
        "runner-test",
        f"runner-test-{os.getpid()}",
        os.environ.get("RUNNER_TEST_NAMESPACE", "default"),
    )
    files = {"tfstate": os.urandom(3 << 20)}
    try:
        with store.lock(ref, 10):
            store.save(ref, files)
        loaded = ConfigMapStore(Kube(load_client({"KUBECONFIG": config})), "h2", 5).load(ref)
        assert loaded.files == files
    finally:
        store.remove(ref)
