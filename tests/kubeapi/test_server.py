"""The fake Kubernetes API server keeps the real server's rules, seen through the real client."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.conftest import REPO
from tests.kubeapi import DEFAULT_USER, FakeKubeAPI

MIB = 1024 * 1024


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as server:
        yield server


@pytest.fixture(autouse=True)
def clean_controls(api: FakeKubeAPI) -> Iterator[None]:
    api.allow_all()
    api.fail()
    api.reset_counts()
    yield
    api.allow_all()
    api.fail()


@pytest.fixture(scope="module")
def api_client(
    api: FakeKubeAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[client.ApiClient]:
    kubeconfig = api.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.retries = False  # one HTTP request per call, so counts and faults are exact
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def coordination(api_client: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


@pytest.fixture
def ns() -> str:
    """A namespace of its own for each test: namespaces exist implicitly."""
    return "t-" + uuid.uuid4().hex[:10]


def failure(call: Callable[[], Any]) -> tuple[int, dict[str, Any], Any]:
    """The status, Status body and headers of a call that must fail."""
    with pytest.raises(ApiException) as info:
        call()
    return info.value.status, json.loads(info.value.body), info.value.headers


def cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, **meta), data=data)


def raw(
    api: FakeKubeAPI,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request with urllib, for what the client can't express."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- create, get, metadata -------------------------------------------------------------------


def test_create_fills_uid_timestamp_namespace_and_global_resource_version(
    core: client.CoreV1Api, ns: str
) -> None:
    first = core.create_namespaced_config_map(ns, cm("one", {"k": "v"}))
    second = core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="two"))
    )
    assert uuid.UUID(first.metadata.uid).version == 4
    assert first.metadata.namespace == ns
    assert first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) == int(first.metadata.resource_version) + 1
    assert core.read_namespaced_config_map("one", ns).data == {"k": "v"}


def test_create_existing_name_is_already_exists(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("x"))
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, cm("x")))
    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "x" already exists'
    assert body["details"] == {"name": "x", "kind": "configmaps"}


def test_generate_name_appends_a_random_suffix(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="state-"))
    )
    assert made.metadata.name.startswith("state-") and len(made.metadata.name) == len("state-") + 5


def test_missing_object_is_not_found_for_get_patch_delete(core: client.CoreV1Api, ns: str) -> None:
    calls = [
        lambda: core.read_namespaced_config_map("nope", ns),
        lambda: core.patch_namespaced_config_map(
            "nope", ns, {"data": {}}, _content_type="application/merge-patch+json"
        ),
        lambda: core.delete_namespaced_config_map("nope", ns),
    ]
    for call in calls:
        status, body, _ = failure(call)
        assert (status, body["reason"]) == (404, "NotFound")
        assert body["message"] == 'configmaps "nope" not found'
        assert body["details"] == {"name": "nope", "kind": "configmaps"}


def test_body_namespace_must_match_the_url(core: client.CoreV1Api, ns: str) -> None:
    status, body, _ = failure(
        lambda: core.create_namespaced_config_map(ns, cm("x", namespace="elsewhere"))
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    assert "does not match the namespace" in body["message"]


def test_create_with_resource_version_is_refused(core: client.CoreV1Api, ns: str) -> None:
    status, body, _ = failure(
        lambda: core.create_namespaced_config_map(ns, cm("x", resource_version="5"))
    )
    assert status == 500
    assert "resourceVersion should not be set on objects to be created" in body["message"]


# --- replace and optimistic concurrency ------------------------------------------------------


def test_replace_with_current_resource_version_bumps_it(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x", {"n": "1"}))
    made.data = {"n": "2"}
    replaced = core.replace_namespaced_config_map("x", ns, made)
    assert int(replaced.metadata.resource_version) > int(made.metadata.resource_version)
    assert replaced.metadata.uid == made.metadata.uid
    assert replaced.metadata.creation_timestamp == made.metadata.creation_timestamp


def test_replace_with_stale_resource_version_conflicts(core: client.CoreV1Api, ns: str) -> None:
    stale = core.create_namespaced_config_map(ns, cm("x", {"n": "1"}))
    fresh = core.read_namespaced_config_map("x", ns)
    fresh.data = {"n": "2"}
    core.replace_namespaced_config_map("x", ns, fresh)
    stale.data = {"n": "3"}
    status, body, _ = failure(lambda: core.replace_namespaced_config_map("x", ns, stale))
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "x": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert core.read_namespaced_config_map("x", ns).data == {"n": "2"}


def test_replace_without_resource_version_is_unconditional(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("x", {"n": "1"}))
    core.replace_namespaced_config_map("x", ns, cm("x", {"n": "2"}))
    assert core.read_namespaced_config_map("x", ns).data == {"n": "2"}


def test_replace_does_not_create(core: client.CoreV1Api, ns: str) -> None:
    status, body, _ = failure(lambda: core.replace_namespaced_config_map("x", ns, cm("x")))
    assert (status, body["reason"]) == (404, "NotFound")


def test_replace_name_must_match_the_url(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("x"))
    status, body, _ = failure(lambda: core.replace_namespaced_config_map("x", ns, cm("y")))
    assert status == 400
    assert body["message"] == "the name of the object (y) does not match the name on the URL (x)"


def test_unchanged_replace_keeps_the_resource_version(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x", {"n": "1"}))
    again = core.replace_namespaced_config_map("x", ns, made)
    assert again.metadata.resource_version == made.metadata.resource_version


def test_concurrent_read_modify_write_loses_no_update(
    api_client: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(ns, cm("counter", {"n": "0"}))

    def bump() -> None:
        for _ in range(5):
            while True:
                current = core.read_namespaced_config_map("counter", ns)
                current.data["n"] = str(int(current.data["n"]) + 1)
                try:
                    core.replace_namespaced_config_map("counter", ns, current)
                    break
                except ApiException as err:
                    assert err.status == 409

    threads = [threading.Thread(target=bump) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert core.read_namespaced_config_map("counter", ns).data["n"] == "50"


# --- patch -----------------------------------------------------------------------------------


def test_merge_patch_merges_and_honours_resource_version(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x", {"a": "1", "b": "2"}))
    patched = core.patch_namespaced_config_map(
        "x", ns, {"data": {"b": None, "c": "3"}}, _content_type="application/merge-patch+json"
    )
    assert patched.data == {"a": "1", "c": "3"}
    stale = {"metadata": {"resourceVersion": made.metadata.resource_version}, "data": {"d": "4"}}
    status, body, _ = failure(
        lambda: core.patch_namespaced_config_map(
            "x", ns, stale, _content_type="application/strategic-merge-patch+json"
        )
    )
    assert (status, body["reason"]) == (409, "Conflict")


def test_dict_patch_is_a_strategic_merge_and_an_object_json_patch_is_refused(
    core: client.CoreV1Api, api: FakeKubeAPI, ns: str
) -> None:
    core.create_namespaced_config_map(ns, cm("x", {"a": "1"}))
    # The client sends a dict body as application/strategic-merge-patch+json.
    assert core.patch_namespaced_config_map("x", ns, {"data": {"b": "2"}}).data == {
        "a": "1",
        "b": "2",
    }
    path = f"/api/v1/namespaces/{ns}/configmaps/x"
    status, _, body = raw(api, "PATCH", path, {"data": {}}, "application/json-patch+json")
    assert (status, body["reason"]) == (400, "BadRequest")
    status, _, body = raw(api, "PATCH", path, {"data": {}}, "application/apply-patch+yaml")
    assert status == 415


def test_json_patch_test_operation_guards_the_write(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x", {"a": "1"}))
    rv = made.metadata.resource_version
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/data/a", "value": "2"},
    ]
    assert core.patch_namespaced_config_map("x", ns, ops).data == {"a": "2"}
    status, body, _ = failure(lambda: core.patch_namespaced_config_map("x", ns, ops))
    assert (status, body["reason"]) == (422, "Invalid")


# --- names, labels and keys ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "x" * 254])
def test_invalid_name_is_422(core: client.CoreV1Api, ns: str, name: str) -> None:
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, cm(name)))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith(
        f'ConfigMap "{name}" is invalid: metadata.name: Invalid value'
    )
    assert body["details"]["kind"] == "ConfigMap"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_dotted_253_character_name_is_valid(core: client.CoreV1Api, ns: str) -> None:
    name = ".".join(["a" * 63] * 4)[:253].rstrip(".")
    assert core.create_namespaced_config_map(ns, cm(name)).metadata.name == name


@pytest.mark.parametrize(
    "labels",
    [{"k": "v" * 64}, {"k": "bad value"}, {"k": "-x"}, {"bad key": "v"}, {"a/b/c": "v"}],
)
def test_invalid_labels_are_422(core: client.CoreV1Api, ns: str, labels: dict[str, str]) -> None:
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, cm("x", labels=labels)))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.labels"


def test_valid_labels_are_accepted(core: client.CoreV1Api, ns: str) -> None:
    labels = {"app.kubernetes.io/name": "x", "k": "", "v": "A" + "b" * 61 + "9"}
    assert core.create_namespaced_config_map(ns, cm("x", labels=labels)).metadata.labels == labels


@pytest.mark.parametrize("key", ["has space", "slash/key", "..", "x" * 254])
def test_bad_configmap_key_is_422(core: client.CoreV1Api, ns: str, key: str) -> None:
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, cm("x", {key: "v"})))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == f"data[{key}]"


def test_key_in_both_data_and_binary_data_is_422(core: client.CoreV1Api, ns: str) -> None:
    both = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="x"), data={"k": "v"}, binary_data={"k": b64(b"v")}
    )
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, both))
    assert status == 422
    assert "duplicate of key present in data" in body["message"]


def test_binary_data_must_be_base64(api: FakeKubeAPI, ns: str) -> None:
    body = {"metadata": {"name": "x"}, "binaryData": {"k": "not base64!"}}
    status, _, answer = raw(api, "POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert "illegal base64 data" in answer["message"]


# --- the 1 MiB object limit and the request body limit --------------------------------------


def test_configmap_of_exactly_1_mib_is_accepted_and_one_byte_more_is_not(
    core: client.CoreV1Api, ns: str
) -> None:
    half = MIB // 2
    fits = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="fits"),
        data={"text": "x" * half},
        binary_data={"blob": b64(b"\0" * half)},
    )
    core.create_namespaced_config_map(ns, fits)
    over = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="over"),
        data={"text": "x" * half},
        binary_data={"blob": b64(b"\0" * (half + 1))},
    )
    status, body, _ = failure(lambda: core.create_namespaced_config_map(ns, over))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'ConfigMap "over" is invalid: []: Too long: must have at most 1048576 bytes'
    )


def test_configmap_size_counts_utf8_bytes(core: client.CoreV1Api, ns: str) -> None:
    # MIB // 4 two-byte characters and MIB // 2 + 1 ASCII ones: 1 MiB + 1 byte in UTF-8.
    data = {"k": "é" * (MIB // 4), "ascii": "x" * (MIB // 2 + 1)}
    status, _, _ = failure(lambda: core.create_namespaced_config_map(ns, cm("x", data)))
    assert status == 422
    data["ascii"] = data["ascii"][:-1]
    assert core.create_namespaced_config_map(ns, cm("x", data)).metadata.name == "x"


def test_secret_limit_counts_decoded_bytes(core: client.CoreV1Api, ns: str) -> None:
    fits = client.V1Secret(metadata=client.V1ObjectMeta(name="fits"), data={"k": b64(b"\1" * MIB)})
    core.create_namespaced_secret(ns, fits)
    over = client.V1Secret(
        metadata=client.V1ObjectMeta(name="over"), data={"k": b64(b"\1" * (MIB + 1))}
    )
    status, body, _ = failure(lambda: core.create_namespaced_secret(ns, over))
    assert status == 422
    assert (
        body["message"]
        == 'Secret "over" is invalid: data: Too long: must have at most 1048576 bytes'
    )


def test_request_body_over_3_mib_is_413_and_the_connection_survives(
    core: client.CoreV1Api, ns: str
) -> None:
    status, body, _ = failure(
        lambda: core.create_namespaced_config_map(ns, cm("big", {"k": "x" * (3 * MIB + 1)}))
    )
    assert (status, body["reason"]) == (413, "RequestEntityTooLarge")
    assert core.create_namespaced_config_map(ns, cm("small")).metadata.name == "small"


# --- secrets ---------------------------------------------------------------------------------


def test_secret_string_data_is_folded_into_data(
    core: client.CoreV1Api, api: FakeKubeAPI, ns: str
) -> None:
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="s"),
        data={"a": b64(b"one")},
        string_data={"b": "two", "a": "override"},
    )
    made = core.create_namespaced_secret(ns, secret)
    assert made.type == "Opaque"
    assert made.string_data is None
    assert {k: base64.b64decode(v) for k, v in made.data.items()} == {"a": b"override", "b": b"two"}
    assert "stringData" not in api.get_object("secrets", ns, "s")


def test_secret_data_must_be_base64(core: client.CoreV1Api, ns: str) -> None:
    bad = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), data={"k": "***"})
    status, body, _ = failure(lambda: core.create_namespaced_secret(ns, bad))
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"].startswith('Secret in version "v1" cannot be handled as a Secret')


def test_secret_type_is_immutable(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s"))
    )
    made.type = "kubernetes.io/basic-auth"
    status, body, _ = failure(lambda: core.replace_namespaced_secret("s", ns, made))
    assert status == 422 and "field is immutable" in body["message"]


def test_immutable_configmap_refuses_data_changes(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"), data={"a": "1"}, immutable=True),
    )
    made.data = {"a": "2"}
    status, _, _ = failure(lambda: core.replace_namespaced_config_map("x", ns, made))
    assert status == 422


# --- delete ----------------------------------------------------------------------------------


def test_delete_returns_success_status(core: client.CoreV1Api, api: FakeKubeAPI, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x"))
    answer = core.delete_namespaced_config_map("x", ns)
    assert answer.status == "Success"
    assert answer.details.uid == made.metadata.uid
    assert api.get_object("configmaps", ns, "x") is None


def test_delete_preconditions_must_match(core: client.CoreV1Api, ns: str) -> None:
    made = core.create_namespaced_config_map(ns, cm("x"))
    wrong_rv = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    status, body, _ = failure(lambda: core.delete_namespaced_config_map("x", ns, body=wrong_rv))
    assert (status, body["reason"]) == (409, "Conflict")
    assert "Precondition failed: ResourceVersion in precondition: 1" in body["message"]
    wrong_uid = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="nope"))
    status, body, _ = failure(lambda: core.delete_namespaced_config_map("x", ns, body=wrong_uid))
    assert status == 409 and "UID in precondition: nope" in body["message"]
    right = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(
            resource_version=made.metadata.resource_version, uid=made.metadata.uid
        )
    )
    assert core.delete_namespaced_config_map("x", ns, body=right).status == "Success"


# --- list and selectors ----------------------------------------------------------------------


def test_list_filters_by_label_selector(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("a", labels={"app": "x", "tier": "state"}))
    core.create_namespaced_config_map(ns, cm("b", labels={"app": "x"}))
    core.create_namespaced_config_map(ns, cm("c", labels={"app": "y", "tier": "state"}))

    def names(selector: str) -> list[str]:
        listed = core.list_namespaced_config_map(ns, label_selector=selector)
        assert listed.kind == "ConfigMapList" and int(listed.metadata.resource_version) > 0
        return [item.metadata.name for item in listed.items]

    assert names("app=x,tier=state") == ["a"]
    assert names("app=x") == ["a", "b"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b"]
    assert names("app!=x") == ["c"]
    assert names("app in (x,y),tier") == ["a", "c"]
    assert names("") == ["a", "b", "c"]


def test_list_as_partial_object_metadata_returns_metadata_only(
    api: FakeKubeAPI, core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, cm("big", data={"k": "x" * 1000}, labels={"app": "x"}))
    request = urllib.request.Request(
        f"{api.url}/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Dx",
        headers={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        listed = json.loads(response.read())
    assert listed["kind"] == "PartialObjectMetadataList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["big"]
    assert all(set(item) == {"kind", "apiVersion", "metadata"} for item in listed["items"])


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api, ns: str) -> None:
    for name in "abcde":
        core.create_namespaced_config_map(ns, cm(name))
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [i.metadata.name for i in first.items] == ["a", "b"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(ns, limit=10, _continue=first.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["c", "d", "e"]
    by_name = core.list_namespaced_config_map(ns, field_selector="metadata.name=d")
    assert [i.metadata.name for i in by_name.items] == ["d"]


# --- leases ----------------------------------------------------------------------------------


def lease(name: str, holder: str, **spec: Any) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=30, **spec),
    )


def test_lease_round_trip(
    coordination: client.CoordinationV1Api, api: FakeKubeAPI, ns: str
) -> None:
    now = datetime(2026, 11, 24, 2, 10, 0, 123456, tzinfo=UTC)
    made = coordination.create_namespaced_lease(
        ns, lease("lock", "runner-1", acquire_time=now, renew_time=now, lease_transitions=0)
    )
    assert made.spec.holder_identity == "runner-1"
    assert made.spec.renew_time == now
    assert (
        api.get_object("leases", ns, "lock")["spec"]["renewTime"] == "2026-11-24T02:10:00.123456Z"
    )
    made.spec.holder_identity = "runner-2"
    made.spec.lease_transitions = 1
    replaced = coordination.replace_namespaced_lease("lock", ns, made)
    assert (replaced.spec.holder_identity, replaced.spec.lease_transitions) == ("runner-2", 1)
    status, body, _ = failure(lambda: coordination.replace_namespaced_lease("lock", ns, made))
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith(
        'Operation cannot be fulfilled on leases.coordination.k8s.io "lock"'
    )


def test_lease_update_needs_a_resource_version_and_put_creates(
    coordination: client.CoordinationV1Api, ns: str
) -> None:
    # The real lease registry allows create-on-update and refuses unconditional updates.
    created = coordination.replace_namespaced_lease("lock", ns, lease("lock", "a"))
    assert created.spec.holder_identity == "a"
    status, body, _ = failure(
        lambda: coordination.replace_namespaced_lease("lock", ns, lease("lock", "b"))
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert (
        "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        in body["message"]
    )


def test_lease_times_must_be_micro_time(api: FakeKubeAPI, ns: str) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    body = {"metadata": {"name": "l"}, "spec": {"renewTime": "2026-11-24T02:10:00Z"}}
    status, _, answer = raw(api, "POST", path, body)
    assert (status, answer["reason"]) == (400, "BadRequest")
    body["spec"] = {"leaseDurationSeconds": "30"}
    assert raw(api, "POST", path, body)[0] == 400
    body["spec"] = {"leaseDurationSeconds": 0}
    assert raw(api, "POST", path, body)[0] == 422


# --- RBAC ------------------------------------------------------------------------------------


def test_forbid_answers_403_with_the_real_message(
    api: FakeKubeAPI, core: client.CoreV1Api, ns: str
) -> None:
    core.create_namespaced_config_map(ns, cm("x"))
    api.forbid("get", "configmaps")
    status, body, _ = failure(lambda: core.read_namespaced_config_map("x", ns))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        f'configmaps "x" is forbidden: User "{DEFAULT_USER}" cannot get resource "configmaps" '
        f'in API group "" in the namespace "{ns}"'
    )
    assert body["details"] == {"name": "x", "kind": "configmaps"}
    assert core.list_namespaced_config_map(ns).items  # other verbs still work
    api.allow_all()
    assert core.read_namespaced_config_map("x", ns).metadata.name == "x"


def test_forbid_can_target_one_namespace_and_names_the_group(
    api: FakeKubeAPI, coordination: client.CoordinationV1Api, ns: str
) -> None:
    api.forbid("create", "leases", namespace=ns)
    status, body, _ = failure(lambda: coordination.create_namespaced_lease(ns, lease("l", "a")))
    assert status == 403
    assert body["message"] == (
        f'leases.coordination.k8s.io is forbidden: User "{DEFAULT_USER}" cannot create resource '
        f'"leases" in API group "coordination.k8s.io" in the namespace "{ns}"'
    )
    assert coordination.create_namespaced_lease(ns + "-other", lease("l", "a"))


def test_forbidden_user_comes_from_the_kubeconfig(
    api: FakeKubeAPI, tmp_path: Path, ns: str
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kc", namespace=ns, user="alice")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api.forbid("list", "secrets")
    with client.ApiClient(configuration) as other:
        status, body, _ = failure(lambda: client.CoreV1Api(other).list_namespaced_secret(ns))
    assert status == 403 and 'User "alice" cannot list resource "secrets"' in body["message"]


# --- faults ----------------------------------------------------------------------------------


def test_injected_503_and_429(api: FakeKubeAPI, core: client.CoreV1Api, ns: str) -> None:
    api.fail(rate=1.0)
    status, body, _ = failure(lambda: core.list_namespaced_config_map(ns))
    assert (status, body["reason"], body["kind"]) == (503, "ServiceUnavailable", "Status")
    api.fail(rate=1.0, status=429)
    status, body, headers = failure(lambda: core.list_namespaced_config_map(ns))
    assert (status, body["reason"], headers["Retry-After"]) == (429, "TooManyRequests", "1")
    api.fail()
    assert core.list_namespaced_config_map(ns).items == []


def test_injected_reset_drops_the_connection(
    api: FakeKubeAPI, core: client.CoreV1Api, ns: str
) -> None:
    api.fail(reset_rate=1.0)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_namespaced_config_map(ns)
    assert api.requests[-1] == ("GET", f"/api/v1/namespaces/{ns}/configmaps", 0)
    api.fail()
    assert core.list_namespaced_config_map(ns).items == []


def test_lost_response_applies_the_write(api: FakeKubeAPI, core: client.CoreV1Api, ns: str) -> None:
    api.fail(lost_response_rate=1.0, only={"create"})
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.create_namespaced_config_map(ns, cm("x"))
    assert api.get_object("configmaps", ns, "x") is not None


def test_faults_can_be_limited_to_some_verbs(
    api: FakeKubeAPI, core: client.CoreV1Api, ns: str
) -> None:
    api.fail(rate=1.0, only={"update"})
    made = core.create_namespaced_config_map(ns, cm("x"))
    status, _, _ = failure(lambda: core.replace_namespaced_config_map("x", ns, made))
    assert status == 503


def test_seeded_faults_repeat(api: FakeKubeAPI, core: client.CoreV1Api, ns: str) -> None:
    def outcomes() -> list[int]:
        api.fail(rate=0.5, seed=7)
        api.reset_counts()
        for _ in range(20):
            with contextlib.suppress(ApiException):
                core.list_namespaced_config_map(ns)
        return [status for _, _, status in api.requests]

    first = outcomes()
    assert first == outcomes()
    assert {200, 503} == set(first)


def test_latency_delays_each_answer(api: FakeKubeAPI, core: client.CoreV1Api, ns: str) -> None:
    api.fail(latency=0.15)
    started = time.monotonic()
    core.list_namespaced_config_map(ns)
    assert time.monotonic() - started >= 0.15


# --- bookkeeping, discovery, raw HTTP --------------------------------------------------------


def test_requests_are_counted(api: FakeKubeAPI, core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("x"))
    core.read_namespaced_config_map("x", ns)
    failure(lambda: core.read_namespaced_config_map("y", ns))
    assert api.request_count == 3
    assert api.requests == [
        ("POST", f"/api/v1/namespaces/{ns}/configmaps", 201),
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/x", 200),
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/y", 404),
    ]
    assert api.count(method="GET", status=404) == 1
    api.reset_counts()
    assert api.request_count == 0


def test_seeded_objects_get_system_metadata(
    api: FakeKubeAPI, core: client.CoreV1Api, ns: str
) -> None:
    seeded = api.put_object("configmaps", ns, {"metadata": {"name": "seed"}, "data": {"k": "v"}})
    assert seeded["metadata"]["uid"] and seeded["metadata"]["resourceVersion"]
    assert core.read_namespaced_config_map("seed", ns).data == {"k": "v"}
    assert set(api.objects("configmaps", ns)) == {"seed"}


def test_discovery_and_unknown_paths(api: FakeKubeAPI) -> None:
    assert raw(api, "GET", "/version")[2]["gitVersion"].startswith("v1.")
    assert raw(api, "GET", "/api")[2]["versions"] == ["v1"]
    groups = raw(api, "GET", "/apis")[2]["groups"]
    assert [g["name"] for g in groups] == ["coordination.k8s.io"]
    status, _, body = raw(api, "GET", "/api/v1/namespaces/default/pods")
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")


def test_malformed_json_is_a_bad_request(api: FakeKubeAPI, ns: str) -> None:
    status, headers, body = raw(api, "POST", f"/api/v1/namespaces/{ns}/configmaps", b"{nope")
    assert (status, body["reason"]) == (400, "BadRequest")
    assert headers["Content-Type"] == "application/json"


def test_keep_alive_serves_many_requests_on_one_connection(api: FakeKubeAPI, ns: str) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        for _ in range(5):
            conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps/missing")
            response = conn.getresponse()
            assert response.status == 404
            assert int(response.headers["Content-Length"]) == len(response.read())
    finally:
        conn.close()


def test_watch_streams_existing_and_new_objects(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, cm("before"))
    threading.Timer(0.1, lambda: core.create_namespaced_config_map(ns, cm("after"))).start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_config_map, ns, timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            stream.stop()
    assert seen == [("ADDED", "before"), ("ADDED", "after")]


def test_runs_standalone_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.kubeapi", "--port", "0", "--kubeconfig", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        assert configuration.host == url
        with client.ApiClient(configuration) as remote:
            made = client.CoreV1Api(remote).create_namespaced_config_map("default", cm("x"))
        assert made.metadata.namespace == "default"
        # Another process steers it over /_fake/.
        control = urllib.request.Request(
            url + "/_fake/fail", data=json.dumps({"rate": 1.0, "only": ["get"]}).encode()
        )
        urllib.request.urlopen(control, timeout=5).close()
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(url + "/api/v1/namespaces/default/configmaps/x", timeout=5)
        failed.value.close()
        assert failed.value.code == 503
        with urllib.request.urlopen(url + "/_fake/requests", timeout=5) as seen:
            assert json.loads(seen.read())["requests"][-1] == [
                "GET",
                "/api/v1/namespaces/default/configmaps/x",
                503,
            ]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
