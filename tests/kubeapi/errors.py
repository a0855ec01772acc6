"""API errors shaped like the Kubernetes API server's `Status` answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

OPTIMISTIC_LOCK_MSG = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


@dataclass
class FieldError:
    """One validation failure, like apimachinery's field.Error."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueTooLong, FieldValueForbidden
    field: str
    body: str  # "Invalid value: \"X\": detail", as field.Error.ErrorBody() prints it

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def go_value(value: Any) -> str:
    """Formats a value the way field.Invalid prints it (strings quoted, numbers bare)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, f"Invalid value: {go_value(value)}: {detail}")


def required(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueRequired", path, f"Required value: {detail}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: must have at most {limit} bytes")


def forbidden_field(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


@dataclass
class ApiError(Exception):
    """An error answer: HTTP code, Status reason, message and details."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(name: str | None, kind: str, group: str = "", **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def qualified(resource: str, group: str) -> str:
    """'configmaps' or 'leases.coordination.k8s.io', as messages name a resource."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        _details(name, resource, group),
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        _details(name, resource, group),
    )


def conflict(resource: str, name: str, why: str = OPTIMISTIC_LOCK_MSG, group: str = "") -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(name, resource, group),
    )


def invalid_object(kind: str, name: str, errors: list[FieldError], group: str = "") -> ApiError:
    """422 Invalid, message formatted like apierrors.NewInvalid with an aggregate."""
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    causes = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    return ApiError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name}" is invalid: {summary}',
        _details(name, kind, group, causes=causes),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(
    user: str, verb: str, resource: str, namespace: str, name: str | None, group: str = ""
) -> ApiError:
    subject = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}" '
        + (f'in the namespace "{namespace}"' if namespace else "at the cluster scope")
    )
    return ApiError(403, "Forbidden", message, _details(name, resource, group))


def unprocessable(server_message: str) -> ApiError:
    """422 as NewGenericServerResponse builds it (JSON patch apply failures)."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": server_message}]},
    )


def internal(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed(method: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
    )


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml, application/vnd.kubernetes.protobuf ({content_type})",
    )


def service_unavailable() -> ApiError:
    return ApiError(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request (injected fault)",
    )


def too_many_requests() -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later "
        "(injected fault)",
        {"retryAfterSeconds": 1},
        {"Retry-After": "1"},
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
