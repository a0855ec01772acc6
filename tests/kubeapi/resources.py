"""The resources the fake serves, with each one's decoding and validation rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import decode as d
from . import validation as v
from .errors import FieldError


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    version: str
    short_names: tuple[str, ...]
    allow_create_on_update: bool  # PUT of a missing object creates it
    allow_unconditional_update: bool  # PUT without metadata.resourceVersion is accepted
    decode_fn: Callable[[Any, d.Decoder], dict[str, Any]]
    validate_fn: Callable[[dict[str, Any], dict[str, Any] | None], list[FieldError]]
    field_selectors: tuple[str, ...] = ("metadata.name", "metadata.namespace")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def decoder(self) -> d.Decoder:
        return d.Decoder(self.kind, self.api_version)

    def decode(self, body: Any) -> tuple[dict[str, Any], list[str]]:
        """Body -> normalized object (400 on type errors), plus the unknown fields it dropped."""
        decoder = self.decoder()
        return self.decode_fn(body, decoder), decoder.unknown

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
        return v.validate_meta(obj) + self.validate_fn(obj, old)

    def discovery(self) -> dict[str, Any]:
        return {
            "name": self.plural,
            "singularName": self.kind.lower(),
            "namespaced": True,
            "kind": self.kind,
            "verbs": [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ],
            "shortNames": list(self.short_names),
        }


CONFIGMAPS = Resource(
    "configmaps",
    "ConfigMap",
    "",
    "v1",
    ("cm",),
    False,
    True,
    d.decode_configmap,
    v.validate_configmap,
)
SECRETS = Resource(
    "secrets",
    "Secret",
    "",
    "v1",
    (),
    False,
    True,
    d.decode_secret,
    v.validate_secret,
    ("metadata.name", "metadata.namespace", "type"),
)
# Leases, like the real registry: PUT creates a missing lease, and an update must carry
# a resourceVersion.
LEASES = Resource(
    "leases",
    "Lease",
    "coordination.k8s.io",
    "v1",
    (),
    True,
    False,
    d.decode_lease,
    v.validate_lease,
)

RESOURCES = {r.plural: r for r in (CONFIGMAPS, SECRETS, LEASES)}
_ALIASES = {
    alias: r
    for r in RESOURCES.values()
    for alias in (r.plural, r.kind, r.kind.lower(), *r.short_names)
}


def lookup(name: str) -> Resource:
    """A resource by plural, kind or short name; KeyError if the fake doesn't serve it."""
    try:
        return _ALIASES[name]
    except KeyError:
        raise KeyError(f"unknown resource {name!r}; expected one of {sorted(RESOURCES)}") from None
