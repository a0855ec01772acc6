"""The seed story as a Kratix pipeline pod runs it: the image's /steps.d, no flags, in-cluster config.

Each run is the Promise's container exactly: its `command` (`runner run create-bucket`) and env
(`secretKeyRef`s resolved) read from examples/app-promise/promise.yaml, plus what Kratix and
the kubelet add (KRATIX_*, HOSTNAME, KUBERNETES_SERVICE_*), in a pod's filesystem built by
tests/podroot.py: /kratix/{input,output,metadata}, /steps.d and /terraform as the Dockerfile
copies them, the service account's token, ca.crt and namespace, the image's uid 10001. The
API server is FakeKubeAPI over HTTPS, trusted only through that ca.crt; S3 is on loopback.

Skipped where the machine can't build the pod view (not root, no mount namespaces or overlayfs)
or can't make a TLS certificate.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DEFAULT_REQUEST, REPO, VENV_BIN
from tests.fakes import FAKE_BIN, S3Server
from tests.kubeapi import DEFAULT_USER, FakeKubeAPI
from tests.kubeapi.control import token_for
from tests.podroot import POD_ONLY_PATHS, PodView

PROMISE = REPO / "examples" / "app-promise" / "promise.yaml"
MINIO_SECRET = "app-promise-minio-creds"  # the Secret the Promise's secretKeyRefs name
# The image: the Dockerfile's COPY steps.d/ /steps.d/ and COPY terraform/ /terraform/.
IMAGE = {"/steps.d": REPO / "steps.d", "/terraform": REPO / "terraform"}
# python:3.12-slim's ENV and ours; PATH: the stand-in terraform, then the runner's venv
# (where the image has /usr/local/bin/{terraform,runner}).
IMAGE_ENV = {
    "PATH": f"{FAKE_BIN}:{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "TF_IN_AUTOMATION": "1",
}
STATE_LABELS = {
    "app.kubernetes.io/managed-by": "kratix-step-runner",
    "runner.kratix.dev/step": "create-bucket",
    "runner.kratix.dev/object-name": "my-app",
    "runner.kratix.dev/object-namespace": "default",
}


# --- the Promise's containers ------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    pipeline: str
    command: list[str]
    env: dict[str, str]


def promise_container(action: str, name: str, secrets: dict[str, dict[str, str]]) -> Container:
    """The Promise's resource `action` container `name`: its command and resolved env."""
    promise = yaml.safe_load(PROMISE.read_text())
    for pipeline in promise["spec"]["workflows"]["resource"][action]:
        for container in pipeline["spec"]["containers"]:
            if container["name"] != name:
                continue
            env = {}
            for var in container.get("env", []):
                if "value" in var:
                    env[var["name"]] = str(var["value"])
                else:
                    ref = var["valueFrom"]["secretKeyRef"]
                    env[var["name"]] = secrets[ref["name"]][ref["key"]]
            return Container(pipeline["metadata"]["name"], container["command"], env)
    raise LookupError(f"{PROMISE} has no resource {action} container {name}")


def kratix_env(action: str, pipeline: str) -> dict[str, str]:
    """What Kratix sets in every container of a resource workflow for DEFAULT_REQUEST."""
    request: dict[str, Any] = DEFAULT_REQUEST
    group, version = request["apiVersion"].split("/")
    return {
        "KRATIX_WORKFLOW_ACTION": action,
        "KRATIX_WORKFLOW_TYPE": "resource",
        "KRATIX_PROMISE_NAME": "app",
        "KRATIX_PIPELINE_NAME": pipeline,
        "KRATIX_OBJECT_KIND": request["kind"],
        "KRATIX_OBJECT_GROUP": group,
        "KRATIX_OBJECT_VERSION": version,
        "KRATIX_OBJECT_NAME": request["metadata"]["name"],
        "KRATIX_OBJECT_NAMESPACE": request["metadata"]["namespace"],
        "KRATIX_CRD_PLURAL": "apps",
        "KRATIX_CLUSTER_SCOPED": "false",
    }


def kubelet_env(pod_name: str, kube: FakeKubeAPI) -> dict[str, str]:
    """What the kubelet adds: the pod's name, HOME, and the `kubernetes` Service's variables."""
    host, port = kube.host, str(kube.port)
    tcp = f"KUBERNETES_PORT_{port}_TCP"
    return {
        "HOSTNAME": pod_name,
        "HOME": "/home/runner",
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        tcp: f"tcp://{host}:{port}",
        f"{tcp}_PROTO": "tcp",
        f"{tcp}_PORT": port,
        f"{tcp}_ADDR": host,
    }


class PipelinePod:
    """One pod of a Kratix resource workflow: its view, its container's argv and env."""

    def __init__(
        self, base: Path, action: str, container: str, kube: FakeKubeAPI, s3: S3Server
    ) -> None:
        secrets = {
            MINIO_SECRET: {"endpoint": s3.endpoint, "username": s3.user, "password": s3.password}
        }
        self.container = promise_container(action, container, secrets)
        self.view = pod_view(base)
        self.view.mount_service_account(
            token=token_for(DEFAULT_USER), ca_pem=kube.ca_pem or "", namespace="default"
        )
        # Kratix's reader container put the request there before this container started.
        (self.view.input / "object.yaml").write_text(yaml.safe_dump(DEFAULT_REQUEST))
        pod_name = f"kratix-app-my-app-{self.container.pipeline}-5d3e1-7xk2p"
        self.env = {
            **IMAGE_ENV,
            **kubelet_env(pod_name, kube),
            **kratix_env(action, self.container.pipeline),
            **self.container.env,
        }

    def run(self, without: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """The container's command in the pod, its env less the variables `without` names."""
        env = {k: v for k, v in self.env.items() if k not in without}
        result = self.view.run(self.container.command, env, timeout=60)
        assert "Traceback" not in result.stderr, result.stderr
        assert "podroot:" not in result.stderr, result.stderr
        return result

    def status(self) -> dict[str, Any]:
        path = self.view.metadata / "status.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else {}


def pod_view(base: Path) -> PodView:
    # The image has its Python in /usr/local; here the pod sees the venv and its interpreter.
    visible = [REPO, Path(sys.prefix), Path(sys.base_prefix)]
    return PodView(base, image=IMAGE, visible=visible)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pod_views(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skips the module where this machine can't build a pod's view."""
    reason = pod_view(tmp_path_factory.mktemp("probe")).probe()
    if reason is not None:
        pytest.skip(f"no pod view here: {reason}")


@pytest.fixture(autouse=True)
def real_root_untouched() -> Iterator[None]:
    """A pod's /steps.d, /kratix... must never leak onto this machine's /: the runner would pick
    /steps.d up in every other test."""
    before = {p: os.path.lexists(p) for p in POD_ONLY_PATHS}
    yield
    assert {p: os.path.lexists(p) for p in POD_ONLY_PATHS} == before


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(tls=True) as api:  # TLS: `cryptography` comes with the test extra (moto)
        yield api


@pytest.fixture
def make_pod(pod_views: None, tmp_path: Path, kube: FakeKubeAPI, s3: S3Server) -> Any:
    s3.reset()
    count = 0

    def make(action: str = "configure", container: str = "create-bucket") -> PipelinePod:
        nonlocal count
        count += 1
        return PipelinePod(tmp_path / f"pod-{count}", action, container, kube, s3)

    return make


def lease_holder(kube: FakeKubeAPI, name: str) -> str | None:
    lease = kube.get_object("leases", "default", name)
    assert lease is not None, f"no Lease default/{name}"
    return lease["spec"].get("holderIdentity")


# --- the story ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_seed_story_in_pipeline_pods_with_the_in_cluster_config(
    make_pod: Any, kube: FakeKubeAPI, s3: S3Server
) -> None:
    configure = make_pod("configure", "create-bucket")
    assert configure.container.command == ["runner", "run", "create-bucket"]
    assert "KUBECONFIG" not in configure.env and "RUNNER_STATE_STORE" not in configure.env

    first = configure.run()
    assert first.returncode == 0, first.stderr
    assert "Apply complete! Resources: 1 added" in first.stdout
    assert s3.buckets() == ["my-app.default"]
    state = kube.get_object("configmaps", "default", "my-app-state")
    assert state is not None, kube.requests
    assert state["metadata"]["labels"] == STATE_LABELS
    tfstate = json.loads(state["data"]["tfstate"])  # plain text, as `kubectl get -o jsonpath` shows
    assert tfstate["resources"][0]["instances"][0]["attributes"]["bucket"] == "my-app.default"
    lease = kube.get_object("leases", "default", "my-app-state")
    assert lease is not None and lease["metadata"]["labels"] == STATE_LABELS
    assert lease["spec"].get("holderIdentity") is None  # released
    status = configure.status()
    assert status["bucket"] == "my-app.default"
    assert status["message"] == "Bucket my-app.default is ready"
    assert status["endpoint"].endswith("my-app.default")  # its host is a secret: masked

    # Kratix reconciles again: a new pod, the same request.
    again = make_pod("configure", "create-bucket")
    saved_version = state["metadata"]["resourceVersion"]
    second = again.run()
    assert second.returncode == 0, second.stderr
    assert "restored state" in second.stderr
    assert "No changes." in second.stdout
    assert s3.buckets() == ["my-app.default"]
    state = kube.get_object("configmaps", "default", "my-app-state")
    assert (
        state is not None and state["metadata"]["resourceVersion"] == saved_version
    )  # unchanged state isn't rewritten
    assert lease_holder(kube, "my-app-state") is None
    assert again.status()["bucket"] == "my-app.default"

    # The request is deleted: the delete workflow's pod.
    delete = make_pod("delete", "delete-bucket")
    assert delete.container.command == ["runner", "run", "delete-bucket"]
    assert delete.container.pipeline == "instance-delete"
    deleted = delete.run()
    assert deleted.returncode == 0, deleted.stderr
    assert s3.buckets() == []
    assert "removed state" in deleted.stderr
    assert kube.objects("configmaps", "default") == {}
    assert kube.objects("leases", "default") == {}

    # Every call went over HTTPS, trusted through the service account's ca.crt (the server
    # speaks nothing else), as the service account the token names.
    assert kube.url.startswith("https://") and kube.count() > 0
    for result in (first, second, deleted):
        output = result.stdout + result.stderr
        assert s3.password not in output
        assert "InsecureRequestWarning" not in output


def test_pod_without_the_minio_password_exits_2_naming_it(
    make_pod: Any, kube: FakeKubeAPI, s3: S3Server
) -> None:
    pod = make_pod()
    result = pod.run(without=("MINIO_PASSWORD",))
    assert result.returncode == 2, result.stderr
    assert "MINIO_PASSWORD" in result.stderr
    assert s3.buckets() == []
    assert kube.objects("configmaps", "default") == {}
    assert kube.objects("leases", "default") == {}  # nothing ran, nothing was locked


def test_forbidden_configmap_get_exits_3_naming_the_service_account(
    make_pod: Any, kube: FakeKubeAPI, s3: S3Server
) -> None:
    kube.forbid("get", "configmaps")
    result = make_pod().run()
    assert result.returncode == 3, result.stderr
    assert DEFAULT_USER == "system:serviceaccount:default:app-resource-pipeline"
    assert DEFAULT_USER in result.stderr
    assert 'get configmaps in namespace "default"' in result.stderr
    assert s3.buckets() == []  # no command ran
    assert lease_holder(kube, "my-app-state") is None


def test_api_server_certificate_not_signed_by_the_pods_ca_exits_3(
    make_pod: Any, s3: S3Server
) -> None:
    pod = make_pod()
    with FakeKubeAPI(tls=True) as elsewhere:  # another cluster's CA in ca.crt
        (pod.view.serviceaccount / "ca.crt").write_text(elsewhere.ca_pem or "")
    result = pod.run()
    assert result.returncode == 3, result.stderr
    assert "certificate" in result.stderr.lower()
    assert s3.buckets() == []


# --- the API server's TLS, on its own ----------------------------------------------------------


def test_fake_kubeapi_tls_is_trusted_only_through_its_ca(tmp_path: Path) -> None:
    from kubernetes import client, config, watch

    with FakeKubeAPI(tls=True) as api:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(api.write_kubeconfig(tmp_path / "kubeconfig")),
            client_configuration=configuration,
        )
        assert configuration.host == api.url and configuration.verify_ssl
        with client.ApiClient(configuration) as trusted:
            core = client.CoreV1Api(trusted)
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"), data={"k": "v"})
            core.create_namespaced_config_map("default", body)
            assert core.read_namespaced_config_map("x", "default").data == {"k": "v"}
            stream = watch.Watch().stream(
                core.list_namespaced_config_map, "default", timeout_seconds=2
            )
            assert next(stream)["object"].metadata.name == "x"

        # With the system's CAs instead of ours, the handshake fails.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(api.url + "/api/v1", timeout=5)
        ours = ssl.create_default_context(cafile=str(api.ca_file))
        with urllib.request.urlopen(api.url + "/api/v1", context=ours, timeout=5) as answer:
            assert answer.status == 200
        assert api.ca_file is not None and api.ca_file.exists()
    assert not api.ca_file.exists()  # removed with the server
