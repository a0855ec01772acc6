"""Validation of ConfigMaps, Secrets and Leases as apimachinery does it (422 Invalid)."""

from __future__ import annotations

import base64
import re
from typing import Any

from .errors import FieldError, forbidden_field, invalid, required, too_long

MAX_OBJECT_DATA = 1024 * 1024  # corev1.MaxSecretSize, also the ConfigMap limit
MAX_ANNOTATIONS = 256 * 1024
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's validation.RegexError, spacing quirks included."""
    if examples:
        msg += " (e.g. " + " or ".join(f"'{e}', " for e in examples)
        return msg + f"regex used for validation is '{fmt}')"
    return msg + f" (regex used for validation is '{fmt}')"


def dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        errs.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
                "example.com",
            )
        )
    return errs


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(DNS1123_LABEL.match(value))


_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


def qualified_name_errors(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not QUALIFIED_NAME.match(name):
        errs.append(
            "name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not LABEL_VALUE.match(value):
        errs.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errs


def config_key_errors(key: str) -> list[str]:
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not CONFIG_KEY.match(key):
        errs.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                "[-._a-zA-Z0-9]+",
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


# --- validation (422) -----------------------------------------------------------------------


def validate_meta(obj: dict[str, Any]) -> list[FieldError]:
    meta = obj["metadata"]
    errs: list[FieldError] = []
    generate = meta.get("generateName", "")
    if generate:
        masked = generate[:-1] + "a" if generate.endswith("-") else generate
        errs += [
            invalid("metadata.generateName", generate, m) for m in dns1123_subdomain_errors(masked)
        ]
    name = meta.get("name", "")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs += [invalid("metadata.name", name, m) for m in dns1123_subdomain_errors(name)]
    for key, value in (meta.get("labels") or {}).items():
        errs += [invalid("metadata.labels", key, m) for m in qualified_name_errors(key)]
        errs += [invalid("metadata.labels", value, m) for m in label_value_errors(value)]
    annotations = meta.get("annotations") or {}
    for key in annotations:
        errs += [
            invalid("metadata.annotations", key, m) for m in qualified_name_errors(key.lower())
        ]
    if sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items()) > MAX_ANNOTATIONS:
        errs.append(too_long("metadata.annotations", MAX_ANNOTATIONS))
    return errs


def _key_errors(section: str, keys: Any) -> list[FieldError]:
    return [invalid(f"{section}[{k}]", k, m) for k in keys for m in config_key_errors(k)]


def _immutable_errors(
    obj: dict[str, Any], old: dict[str, Any] | None, sections: tuple[str, ...]
) -> list[FieldError]:
    if not old or not old.get("immutable"):
        return []
    why = "field is immutable when `immutable` is set"
    errs = []
    if not obj.get("immutable"):
        errs.append(forbidden_field("immutable", why))
    errs += [forbidden_field(s, why) for s in sections if (obj.get(s) or {}) != (old.get(s) or {})]
    return errs


def validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    errs = _key_errors("data", data) + _key_errors("binaryData", binary)
    errs += [
        invalid(f"binaryData[{k}]", k, "duplicate of key present in data")
        for k in binary
        if k in data
    ]
    size = sum(len(v.encode()) for v in data.values())
    size += sum(len(base64.b64decode(v)) for v in binary.values())
    if size > MAX_OBJECT_DATA:
        errs.append(too_long("[]", MAX_OBJECT_DATA))
    return errs + _immutable_errors(obj, old, ("data", "binaryData"))


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    data = obj.get("data") or {}
    errs = _key_errors("data", data)
    if sum(len(base64.b64decode(v)) for v in data.values()) > MAX_OBJECT_DATA:
        errs.append(too_long("data", MAX_OBJECT_DATA))
    if old is not None and obj.get("type") != old.get("type"):
        errs.append(invalid("type", obj.get("type"), "field is immutable"))
    return errs + _immutable_errors(obj, old, ("data",))


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = []
    if spec.get("leaseDurationSeconds") is not None and spec["leaseDurationSeconds"] <= 0:
        errs.append(
            invalid(
                "spec.leaseDurationSeconds", spec["leaseDurationSeconds"], "must be greater than 0"
            )
        )
    if spec.get("leaseTransitions") is not None and spec["leaseTransitions"] < 0:
        errs.append(
            invalid(
                "spec.leaseTransitions",
                spec["leaseTransitions"],
                "must be greater than or equal to 0",
            )
        )
    return errs
