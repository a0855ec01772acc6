"""Decoding request bodies the way Go's JSON decoding into the typed object does (400 BadRequest).

Only known fields are kept; Secret stringData is folded into data; times are normalized to UTC.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, bad_request

MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RFC3339_MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
}


@dataclass
class Decoder:
    """Type-checks a JSON body against one kind's Go struct, keeping only known fields."""

    kind: str
    api_version: str
    unknown: list[str] = field(default_factory=list)

    def fail(self, detail: str) -> ApiError:
        return bad_request(
            f'{self.kind} in version "{self.api_version.split("/")[-1]}" '
            f"cannot be handled as a {self.kind}: {detail}"
        )

    def type_error(self, value: Any, go_field: str, go_type: str) -> ApiError:
        got = _JSON_TYPES.get(type(value), "value")
        return self.fail(
            f"json: cannot unmarshal {got} into Go struct field {go_field} of type {go_type}"
        )

    def string(self, value: Any, go_field: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.type_error(value, go_field, "string")
        return value

    def integer(self, value: Any, go_field: str, go_type: str = "int32") -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise self.type_error(value, go_field, go_type)
        return int(value)

    def boolean(self, value: Any, go_field: str) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.type_error(value, go_field, "bool")
        return value

    def string_map(self, value: Any, go_field: str) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.type_error(value, go_field, "map[string]string")
        return {k: self.string(v, go_field) for k, v in value.items()}

    def bytes_map(self, value: Any, go_field: str) -> dict[str, bytes] | None:
        """map[string][]byte: each value is standard, padded base64."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.type_error(value, go_field, "map[string][]uint8")
        out = {}
        for key, encoded in value.items():
            if encoded is None:
                out[key] = b""
                continue
            if not isinstance(encoded, str):
                raise self.type_error(encoded, go_field, "[]uint8")
            out[key] = self.base64(encoded)
        return out

    def base64(self, encoded: str) -> bytes:
        text = encoded.replace("\r", "").replace("\n", "")  # Go's StdEncoding skips newlines
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            bad = next(
                (
                    i
                    for i, c in enumerate(text)
                    if not (c.isascii() and (c.isalnum() or c in "+/="))
                ),
                None,
            )
            at = bad if bad is not None else max(len(text) - len(text) % 4, 0)
            raise self.fail(f"illegal base64 data at input byte {at}") from None

    def time(self, value: Any, go_field: str, micro: bool) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.type_error(value, go_field, "string")
        layout = RFC3339_MICRO_LAYOUT if micro else "2006-01-02T15:04:05Z07:00"
        if not (MICRO_TIME if micro else TIME).match(value):
            raise self.fail(
                f'parsing time "{value}" as "{layout}": cannot parse "{value}" as "{layout}"'
            )
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(f'parsing time "{value}": day out of range') from None
        parsed = parsed.astimezone(UTC)
        if micro:
            return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")

    def note_unknown(self, obj: dict[str, Any], known: set[str], prefix: str = "") -> None:
        self.unknown.extend(f"{prefix}{k}" for k in obj if k not in known)


_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
}


def decode_object(d: Decoder, body: Any, spec_fields: dict[str, Any]) -> dict[str, Any]:
    """Common part: type meta and ObjectMeta. spec_fields decode the kind's own fields."""
    if not isinstance(body, dict):
        raise d.fail(
            f"json: cannot unmarshal {_JSON_TYPES.get(type(body), 'value')} "
            "into Go value of type struct"
        )
    api_version = body.get("apiVersion")
    if api_version not in (None, "", d.api_version):
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({d.api_version})"
        )
    kind = body.get("kind")
    if kind not in (None, "", d.kind):
        raise d.fail(f'no kind "{kind}" is registered for version "{d.api_version}"')
    meta_in = body.get("metadata") or {}
    if not isinstance(meta_in, dict):
        raise d.type_error(meta_in, f"{d.kind}.metadata", "v1.ObjectMeta")
    meta: dict[str, Any] = {}
    for key in ("name", "generateName", "namespace", "uid", "resourceVersion"):
        text = d.string(meta_in.get(key), f"{d.kind}.metadata.{key}")
        if text:
            meta[key] = text
    for key in ("labels", "annotations"):
        mapping = d.string_map(meta_in.get(key), f"{d.kind}.metadata.{key}")
        if mapping:
            meta[key] = mapping
    created = d.time(
        meta_in.get("creationTimestamp"), f"{d.kind}.metadata.creationTimestamp", micro=False
    )
    if created:
        meta["creationTimestamp"] = created
    finalizers = meta_in.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list):
            raise d.type_error(finalizers, f"{d.kind}.metadata.finalizers", "[]string")
        meta["finalizers"] = [d.string(f, f"{d.kind}.metadata.finalizers") for f in finalizers]
    if meta_in.get("ownerReferences"):
        if not isinstance(meta_in["ownerReferences"], list):
            raise d.type_error(
                meta_in["ownerReferences"],
                f"{d.kind}.metadata.ownerReferences",
                "[]v1.OwnerReference",
            )
        meta["ownerReferences"] = meta_in["ownerReferences"]
    d.note_unknown(meta_in, _META_FIELDS, "metadata.")
    obj: dict[str, Any] = {"kind": d.kind, "apiVersion": d.api_version, "metadata": meta}
    obj.update(spec_fields)
    d.note_unknown(
        body, {"kind", "apiVersion", "metadata", *spec_fields, *_EXTRA_KNOWN.get(d.kind, ())}
    )
    return obj


_EXTRA_KNOWN = {
    "ConfigMap": ("data", "binaryData", "immutable"),
    "Secret": ("data", "stringData", "type", "immutable"),
    "Lease": ("spec",),
}


def decode_configmap(body: Any, d: Decoder) -> dict[str, Any]:
    src = body if isinstance(body, dict) else {}
    fields: dict[str, Any] = {}
    data = d.string_map(src.get("data"), "ConfigMap.data")
    if data is not None:
        fields["data"] = data
    binary = d.bytes_map(src.get("binaryData"), "ConfigMap.binaryData")
    if binary is not None:
        fields["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    immutable = d.boolean(src.get("immutable"), "ConfigMap.immutable")
    if immutable is not None:
        fields["immutable"] = immutable
    return decode_object(d, body, fields)


def decode_secret(body: Any, d: Decoder) -> dict[str, Any]:
    src = body if isinstance(body, dict) else {}
    fields: dict[str, Any] = {}
    data = d.bytes_map(src.get("data"), "Secret.data")
    string_data = d.string_map(src.get("stringData"), "Secret.stringData")
    if string_data:
        # The v1 -> internal conversion folds stringData into data; it is never stored.
        data = dict(data or {})
        data.update({k: v.encode() for k, v in string_data.items()})
    if data is not None:
        fields["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    fields["type"] = d.string(src.get("type"), "Secret.type") or "Opaque"
    immutable = d.boolean(src.get("immutable"), "Secret.immutable")
    if immutable is not None:
        fields["immutable"] = immutable
    return decode_object(d, body, fields)


_LEASE_SPEC = {
    "holderIdentity",
    "leaseDurationSeconds",
    "acquireTime",
    "renewTime",
    "leaseTransitions",
    "preferredHolder",
    "strategy",
}


def decode_lease(body: Any, d: Decoder) -> dict[str, Any]:
    src = body if isinstance(body, dict) else {}
    spec_in = src.get("spec") or {}
    if not isinstance(spec_in, dict):
        raise d.type_error(spec_in, "Lease.spec", "v1.LeaseSpec")
    spec: dict[str, Any] = {}
    for key in ("holderIdentity", "preferredHolder", "strategy"):
        if spec_in.get(key) is not None:
            spec[key] = d.string(spec_in[key], f"Lease.spec.{key}")
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        number = d.integer(spec_in.get(key), f"Lease.spec.{key}")
        if number is not None:
            spec[key] = number
    for key in ("acquireTime", "renewTime"):
        stamp = d.time(spec_in.get(key), f"Lease.spec.{key}", micro=True)
        if stamp is not None:
            spec[key] = stamp
    d.note_unknown(spec_in, _LEASE_SPEC, "spec.")
    return decode_object(d, body, {"spec": spec})
