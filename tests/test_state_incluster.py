"""The ConfigMap/Secret stores inside a pod: the service account's token and CA read by the
runner itself (runner/state/incluster.py), HTTPS to the loopback API server with its own CA,
nothing of the `kubernetes` package imported. The service account's folder is a test folder
(RUNNER_SERVICEACCOUNT_DIR); tests/test_pipeline_container.py runs the same in a real pod's
filesystem where the machine allows it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.base.errors import StoreError
from runner.state.base import StateRef
from runner.state.configmap_secret import ConfigMapStore
from runner.state.incluster import DIR_VARIABLE, InClusterTransport, join_host_port
from runner.state.kubeapi import Kube, NoAnswer, load_client
from tests.conftest import Pipeline
from tests.kubeapi import FakeKubeAPI
from tests.kubeapi.control import DEFAULT_USER, token_for

COUNTER = """
    state:
      store: configmap
      name: counter
      files: [{path: count.txt, key: count}]
      lock: true
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          echo $((n + 1)) > count.txt
          echo "count is $((n + 1))"
"""
# What the in-pod path must not import: the kubeconfig loader and what it drags in, and the
# `kubernetes` package and urllib3 altogether (the standard library's HTTPS does the work).
HEAVY = ("kubernetes", "urllib3", "requests", "requests_oauthlib", "oauthlib", "dateutil", "google")


def mount_service_account(folder: Path, api: FakeKubeAPI, user: str = DEFAULT_USER) -> Path:
    """A pod's /var/run/secrets/kubernetes.io/serviceaccount: token, ca.crt, namespace."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token_for(user))
    (folder / "ca.crt").write_text(api.ca_pem or "")
    (folder / "namespace").write_text("default")
    return folder


def pod_env(api: FakeKubeAPI, folder: Path) -> dict[str, str]:
    """What the kubelet sets (the `kubernetes` Service), and the test's service account folder."""
    return {
        "KUBERNETES_SERVICE_HOST": api.host,
        "KUBERNETES_SERVICE_PORT": str(api.port),
        DIR_VARIABLE: str(folder),
    }


@pytest.fixture
def tls_api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(tls=True) as server:
        yield server


@pytest.fixture
def pod(pipeline: Pipeline, tls_api: FakeKubeAPI) -> Pipeline:
    """The pipeline in a pod: no kubeconfig, no store override, the service account mounted."""
    folder = mount_service_account(pipeline.root / "serviceaccount", tls_api)
    pipeline.env.pop("RUNNER_STATE_STORE")
    pipeline.env.update(pod_env(tls_api, folder), RUNNER_LEASE_SECONDS="5", HOSTNAME="pod-1")
    pipeline.step("counter", COUNTER)
    return pipeline


def in_pod_kube(api: FakeKubeAPI, folder: Path, **kwargs: float) -> Kube:
    return Kube(load_client(pod_env(api, folder)), **kwargs)  # type: ignore[arg-type]


# --- runner run in a pod ---------------------------------------------------------------------


def test_runner_run_in_a_pod_saves_restores_and_locks_over_https(
    pod: Pipeline, tls_api: FakeKubeAPI
) -> None:
    for expected in (1, 2):
        result = pod.run("run")
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
    assert "restored state from configmap default/counter" in result.stderr
    state = tls_api.get_object("configmaps", "default", "counter")
    assert state is not None and state["data"]["count"].strip() == "2"
    lease = tls_api.get_object("leases", "default", "counter")
    assert lease is not None and lease["spec"].get("holderIdentity") is None  # taken, released
    assert tls_api.count(method="PUT", path="/leases/counter") >= 2  # acquired, then freed
    assert tls_api.url.startswith("https://")


def test_in_pod_run_imports_nothing_of_the_kubernetes_client(
    pod: Pipeline, tls_api: FakeKubeAPI
) -> None:
    listing = pod.root / "modules.json"
    code = (
        "import json, sys\n"
        "from runner.cli import main\n"
        "code = main(sys.argv[2:])\n"
        "open(sys.argv[1], 'w').write(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    argv = [sys.executable, "-c", code, str(listing), "run", *pod.args()]
    result = subprocess.run(
        argv, cwd=pod.work, env=pod.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "count is 1" in result.stdout
    assert tls_api.get_object("configmaps", "default", "counter") is not None
    modules = json.loads(listing.read_text())
    assert "runner.state.incluster" in modules
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    assert heavy == []


def test_outside_a_pod_the_kubeconfig_is_used_as_before(
    pipeline: Pipeline, tls_api: FakeKubeAPI
) -> None:
    """No KUBERNETES_SERVICE_HOST: the kubeconfig (through the `kubernetes` package), even
    with a service account folder named."""
    config = tls_api.write_kubeconfig(pipeline.root / "kubeconfig")
    pipeline.env.pop("RUNNER_STATE_STORE")
    pipeline.env.update(KUBECONFIG=str(config), **{DIR_VARIABLE: str(pipeline.root / "none")})
    pipeline.step("counter", COUNTER)
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert tls_api.get_object("configmaps", "default", "counter") is not None


def test_server_certificate_from_another_ca_exits_3_at_once(
    pod: Pipeline, tls_api: FakeKubeAPI
) -> None:
    with FakeKubeAPI(tls=True) as elsewhere:  # another cluster's CA in ca.crt
        (Path(pod.env[DIR_VARIABLE]) / "ca.crt").write_text(elsewhere.ca_pem or "")
    started = time.monotonic()
    result = pod.run("run")
    assert result.returncode == 3, result.stderr
    assert "does not trust" in result.stderr and "ca.crt" in result.stderr
    assert "count is" not in result.stdout  # no command ran
    assert time.monotonic() - started < 30  # not retried as if the server were away
    assert tls_api.get_object("configmaps", "default", "counter") is None


def test_missing_token_exits_3_naming_the_file(pod: Pipeline) -> None:
    token = Path(pod.env[DIR_VARIABLE]) / "token"
    token.unlink()
    result = pod.run("run")
    assert result.returncode == 3, result.stderr
    assert f"the service account's token {token} does not exist" in result.stderr
    assert "count is" not in result.stdout


# --- the configuration, in process -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"KUBERNETES_SERVICE_PORT": ""}, "KUBERNETES_SERVICE_PORT is not"),
        ({"KUBERNETES_SERVICE_PORT": "https"}, 'KUBERNETES_SERVICE_PORT is "https"'),
        ({"KUBERNETES_SERVICE_PORT": "70000"}, 'KUBERNETES_SERVICE_PORT is "70000"'),
        ({"token": ""}, "token {dir}/token is empty"),
        ({"ca.crt": ""}, "CA certificate {dir}/ca.crt is empty"),
        ({"ca.crt": "not a certificate"}, "CA certificate {dir}/ca.crt is not a PEM certificate"),
        ({"ca.crt": None}, "CA certificate {dir}/ca.crt does not exist"),
    ],
)
def test_unusable_service_account_is_a_store_error(
    tmp_path: Path, tls_api: FakeKubeAPI, change: dict[str, str | None], message: str
) -> None:
    folder = mount_service_account(tmp_path / "sa", tls_api)
    env = pod_env(tls_api, folder)
    for key, value in change.items():
        if key.isupper():
            env[key] = value or ""
        elif value is None:
            (folder / key).unlink()
        else:
            (folder / key).write_text(value)
    with pytest.raises(StoreError) as info:
        load_client(env)
    text = str(info.value)
    assert "no Kubernetes configuration: " in text
    assert message.format(dir=folder) in text
    assert token_for(DEFAULT_USER) not in text


def test_join_host_port_brackets_ipv6() -> None:
    assert join_host_port("10.96.0.1", 443) == "10.96.0.1:443"
    assert join_host_port("::1", 6443) == "[::1]:6443"
    assert join_host_port("[fd00::1]", 443) == "[fd00::1]:443"
    assert join_host_port("kubernetes.default.svc", 443) == "kubernetes.default.svc:443"


def test_rotated_token_is_read_again(tmp_path: Path, tls_api: FakeKubeAPI) -> None:
    """The kubelet rotates a projected token by swapping the file: the next request sends the
    new one (the server names the token's user when it refuses)."""
    folder = mount_service_account(tmp_path / "sa", tls_api, user="system:serviceaccount:a:first")
    kube = in_pod_kube(tls_api, folder, attempts=1)
    tls_api.forbid("get", "configmaps")
    try:
        with pytest.raises(StoreError, match="system:serviceaccount:a:first cannot get"):
            kube.get("configmaps", "default", "x")
        rotated = folder / "token.new"
        rotated.write_text(token_for("system:serviceaccount:a:second"))
        rotated.replace(folder / "token")  # atomically, as the kubelet's symlink swap
        with pytest.raises(StoreError, match="system:serviceaccount:a:second cannot get"):
            kube.get("configmaps", "default", "x")
    finally:
        kube.close()


def test_ipv6_service_host(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with FakeKubeAPI(host="::1", tls=True) as api:
        folder = mount_service_account(tmp_path / "sa", api)
        transport = load_client(pod_env(api, folder))
        assert isinstance(transport, InClusterTransport)
        assert transport.host == f"https://[::1]:{api.port}"
        store = ConfigMapStore(Kube(transport), "ipv6-holder", 5)
        ref = StateRef("s", "v6-state", "default", "app", "default")
        try:
            store.save(ref, {"tfstate": b"over IPv6"})
            loaded = store.load(ref)
        finally:
            store.close()
        assert loaded is not None and loaded.files == {"tfstate": b"over IPv6"}


# --- faults, through the in-pod transport ------------------------------------------------------


def test_transient_failures_and_resets_are_retried(tmp_path: Path, tls_api: FakeKubeAPI) -> None:
    folder = mount_service_account(tmp_path / "sa", tls_api)
    kube = in_pod_kube(tls_api, folder, attempts=8, backoff=0.01)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"}, "data": {}}
    try:
        kube.create("configmaps", "default", body)
        tls_api.fail(rate=0.3, reset_rate=0.3, seed=7)
        for _ in range(10):
            assert kube.get("configmaps", "default", "f") is not None
        tls_api.fail()
        assert tls_api.count(status=503) > 0 and tls_api.count(status=0) > 0
    finally:
        kube.close()


def test_a_hung_request_ends_within_its_limit(tmp_path: Path, tls_api: FakeKubeAPI) -> None:
    folder = mount_service_account(tmp_path / "sa", tls_api)
    kube = in_pod_kube(tls_api, folder, attempts=2, backoff=0.01)
    tls_api.fail(hang=True)
    try:
        started = time.monotonic()
        with pytest.raises(NoAnswer):
            kube.get("leases", "default", "x", within=0.5)
        assert time.monotonic() - started < 5
    finally:
        tls_api.fail()
        kube.close()


def test_a_token_rewritten_in_place_is_read_again_after_a_minute(
    tmp_path: Path, tls_api: FakeKubeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the file looks unchanged (same inode, size and mtime), the token is read
    again once it is older than TOKEN_REFRESH (client-go: a minute)."""
    import os

    from runner.state import incluster

    folder = mount_service_account(tmp_path / "sa", tls_api, user="system:serviceaccount:a:one")
    token = folder / "token"
    before = os.stat(token)
    kube = in_pod_kube(tls_api, folder, attempts=1)
    tls_api.forbid("get", "configmaps")

    def rewrite(user: str) -> None:
        with open(token, "r+") as fh:  # same inode, same size
            fh.write(token_for(user))
        os.utime(token, ns=(before.st_atime_ns, before.st_mtime_ns))

    try:
        rewrite("system:serviceaccount:a:two")
        with pytest.raises(StoreError, match="a:one cannot get"):  # read a moment ago: kept
            kube.get("configmaps", "default", "x")
        monkeypatch.setattr(kube.transport._token, "max_age", 0.0)  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="a:two cannot get"):
            kube.get("configmaps", "default", "x")
        assert incluster.TOKEN_REFRESH == 60.0
    finally:
        kube.close()


@pytest.mark.parametrize("rotated", [False, True])
def test_401_sends_once_more_only_with_a_rotated_token(
    tmp_path: Path, tls_api: FakeKubeAPI, rotated: bool
) -> None:
    import threading

    folder = mount_service_account(tmp_path / "sa", tls_api, user="system:serviceaccount:a:old")
    kube = in_pod_kube(tls_api, folder, attempts=1)
    tls_api.fail(rate=1.0, status=401, latency=0.3)
    if rotated:  # the kubelet swaps the token while the request is on its way
        new = folder / "token.new"
        new.write_text(token_for("system:serviceaccount:a:new"))
        threading.Timer(0.1, new.replace, args=(folder / "token",)).start()
    try:
        with pytest.raises(StoreError, match="rejected the credentials"):
            kube.get("configmaps", "default", "x")
        assert tls_api.count(status=401) == (2 if rotated else 1)
    finally:
        tls_api.fail()
        kube.close()


def test_a_rotated_ca_is_read_again_when_the_certificate_is_refused(
    tmp_path: Path, tls_api: FakeKubeAPI
) -> None:
    folder = mount_service_account(tmp_path / "sa", tls_api)
    with FakeKubeAPI(tls=True) as elsewhere:
        (folder / "ca.crt").write_text(elsewhere.ca_pem or "")
    kube = in_pod_kube(tls_api, folder, attempts=1)
    try:
        with pytest.raises(StoreError, match="does not trust"):
            kube.get("configmaps", "default", "x")
        rotated = folder / "ca.new"
        rotated.write_text(tls_api.ca_pem or "")
        rotated.replace(folder / "ca.crt")
        assert kube.get("configmaps", "default", "x") is None  # trusted now: 404, no object
    finally:
        kube.close()
