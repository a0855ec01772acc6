"""Discovery documents: just enough for clients that look before they leap."""

from __future__ import annotations

from typing import Any

from .resources import RESOURCES

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
COORDINATION = "coordination.k8s.io"


def _resources(group: str) -> list[dict[str, Any]]:
    return [r.discovery() for r in RESOURCES.values() if r.group == group]


def _group() -> dict[str, Any]:
    version = {"groupVersion": f"{COORDINATION}/v1", "version": "v1"}
    return {"name": COORDINATION, "versions": [version], "preferredVersion": version}


def document(path: str, server_address: str) -> dict[str, Any] | None:
    """The discovery answer for path, or None if path isn't a discovery path."""
    if path == "/version":
        return VERSION
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }
    if path == "/api/v1":
        namespaces = {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": ["get"],
            "shortNames": ["ns"],
        }
        return {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [namespaces, *_resources("")],
        }
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group()]}
    if path == f"/apis/{COORDINATION}":
        return {"kind": "APIGroup", "apiVersion": "v1", **_group()}
    if path == f"/apis/{COORDINATION}/v1":
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{COORDINATION}/v1",
            "resources": _resources(COORDINATION),
        }
    return None


def namespace(name: str) -> dict[str, Any]:
    """Namespaces exist implicitly: every valid name answers as an active namespace."""
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": "00000000-0000-4000-8000-000000000000",
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
