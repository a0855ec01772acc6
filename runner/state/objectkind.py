"""The two kinds of Kubernetes object a state can live in, as values: ConfigMap and Secret.

They differ in a few facts (the API resource, where binary values go, whether ``.data`` values
are base64), and both the codec (runner/state/codec/) and the stores
(runner/state/configmap_secret.py) act on those facts. Naming each fact once here keeps the two
from comparing kind names and from disagreeing about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectKind:
    """What a state's code needs to know about one kind of object."""

    name: str
    """The store kind (``configmap``, ``secret``), as `state.store` and the registry say it."""
    resource: str
    """The API resource, as URLs and RBAC rules name it."""
    api_kind: str
    """The object's ``kind`` field."""
    binary_field: str
    """Where base64 binary values go: ``binaryData`` (ConfigMap) or ``data`` (Secret)."""
    base64_values: bool
    """Whether ``.data`` values are base64 (Secret) rather than text as is (ConfigMap)."""
    object_type: str | None = None
    """The object's ``type`` field, for kinds that have one (a Secret: ``Opaque``)."""

    text_field = "data"
    """Where text values go, for both kinds."""

    @property
    def separate_binary(self) -> bool:
        """Whether binary values have a field of their own, apart from text (ConfigMap)."""
        return self.binary_field != self.text_field

    def skeleton(self, name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
        """A new object of this kind with its metadata and no data yet."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": self.api_kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        }
        if self.object_type is not None:
            body["type"] = self.object_type
        return body


CONFIGMAP = ObjectKind(
    name="configmap",
    resource="configmaps",
    api_kind="ConfigMap",
    binary_field="binaryData",
    base64_values=False,
)
SECRET = ObjectKind(
    name="secret",
    resource="secrets",
    api_kind="Secret",
    binary_field="data",
    base64_values=True,
    object_type="Opaque",
)
KINDS = (CONFIGMAP, SECRET)


def check_kind(kind: ObjectKind) -> None:
    """ValueError unless `kind` is one of KINDS (a caller that passed a kind's name, say)."""
    if kind not in KINDS:
        expected = " or ".join(known.name for known in KINDS)
        raise ValueError(f"unknown object kind {kind!r}: expected {expected}")
