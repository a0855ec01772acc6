"""The object store: what the API server's registry and etcd do for ConfigMaps, Secrets and Leases.

One lock guards everything; resourceVersion is one global counter, bumped per write.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors as e
from .patch import apply_patch
from .resources import Resource
from .selectors import field_matcher, label_matcher
from .validation import is_dns1123_label

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet
EVENT_HISTORY = 10_000


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: str
    namespace: str
    obj: dict[str, Any]


@dataclass(frozen=True)
class Result:
    code: int
    body: dict[str, Any]
    warnings: tuple[str, ...] = ()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _precondition_failed(
    res: Resource, name: str, what: str, wanted: str, actual: str
) -> e.ApiError:
    why = f"Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
    return e.conflict(res.plural, name, why, res.group)


class Store:
    def __init__(self, first_resource_version: int = 1000) -> None:
        self.cond = threading.Condition(threading.RLock())
        self._rv = first_resource_version
        self._objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self.closed = False

    # --- helpers ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    def _bucket(self, res: Resource, ns: str) -> dict[str, dict[str, Any]]:
        return self._objects.setdefault((res.plural, ns), {})

    def _commit(self, res: Resource, ns: str, obj: dict[str, Any], event: str) -> dict[str, Any]:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        bucket = self._bucket(res, ns)
        name = obj["metadata"]["name"]
        if event == "DELETED":
            bucket.pop(name, None)
        else:
            bucket[name] = obj
        self._events.append(Event(self._rv, event, res.plural, ns, copy.deepcopy(obj)))
        self.cond.notify_all()
        return copy.deepcopy(obj)

    def _existing(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        obj = self._objects.get((res.plural, ns), {}).get(name)
        if obj is None:
            raise e.not_found(res.plural, name, res.group)
        return obj

    @staticmethod
    def _check_namespace(obj: dict[str, Any], ns: str) -> None:
        body_ns = obj["metadata"].get("namespace")
        if body_ns and body_ns != ns:
            raise e.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        obj["metadata"]["namespace"] = ns

    @staticmethod
    def _raise_if_invalid(res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        problems = res.validate(obj, old)
        if problems:
            raise e.invalid_object(res.kind, obj["metadata"].get("name", ""), problems, res.group)

    @staticmethod
    def _warnings(unknown: list[str], field_validation: str) -> tuple[str, ...]:
        if not unknown:
            return ()
        if field_validation == "Strict":
            detail = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise e.bad_request(f"strict decoding error: {detail}")
        if field_validation == "Ignore":
            return ()
        return tuple(f'unknown field "{u}"' for u in unknown)

    def _generate_name(self, res: Resource, ns: str, prefix: str) -> str:
        bucket = self._bucket(res, ns)
        base = prefix[: 63 - 5] if len(prefix) > 58 else prefix
        while True:
            name = base + "".join(random.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            if name not in bucket:
                return name

    def _create_locked(
        self, res: Resource, ns: str, obj: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(res, ns, meta["generateName"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        self._raise_if_invalid(res, obj, None)
        if meta["name"] in self._bucket(res, ns):
            raise e.already_exists(res.plural, meta["name"], res.group)
        if dry_run:
            meta.pop("resourceVersion", None)
            return obj
        return self._commit(res, ns, obj, "ADDED")

    # --- verbs -----------------------------------------------------------------------------

    def create(
        self, res: Resource, ns: str, body: Any, dry_run: bool = False, field_validation: str = ""
    ) -> Result:
        if not is_dns1123_label(ns):
            raise e.not_found("namespaces", ns)
        obj, unknown = res.decode(body)
        warnings = self._warnings(unknown, field_validation)
        self._check_namespace(obj, ns)
        if obj["metadata"].get("resourceVersion"):
            raise e.internal("resourceVersion should not be set on objects to be created")
        with self.cond:
            return Result(201, self._create_locked(res, ns, obj, dry_run), warnings)

    def get(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            return copy.deepcopy(self._existing(res, ns, name))

    def select(
        self,
        res: Resource,
        ns: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching objects sorted by namespace and name, and the store's resourceVersion."""
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector, res.field_selectors)
        with self.cond:
            items = [
                copy.deepcopy(obj)
                for (plural, bucket_ns), bucket in sorted(self._objects.items())
                if plural == res.plural and (ns is None or bucket_ns == ns)
                for _, obj in sorted(bucket.items())
                if labels(obj) and fields(obj)
            ]
            return items, self._rv

    def list(
        self,
        res: Resource,
        ns: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        items, rv = self.select(res, ns, label_selector, field_selector)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise e.bad_request(f"continue key is not valid: {continue_token}") from None
            items = [
                i
                for i in items
                if (i["metadata"]["namespace"], i["metadata"]["name"]) > tuple(start)
            ]
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = json.dumps({"rv": rv, "start": [last["namespace"], last["name"]]})
            meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        for item in items:  # the real server leaves type meta off list items
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": res.list_kind,
            "apiVersion": res.api_version,
            "metadata": meta,
            "items": items,
        }

    def update(
        self,
        res: Resource,
        ns: str,
        name: str,
        body: Any,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> Result:
        obj, unknown = res.decode(body)
        warnings = self._warnings(unknown, field_validation)
        return self._update(
            res, ns, name, obj, dry_run, warnings, allow_create=res.allow_create_on_update
        )

    def patch(
        self,
        res: Resource,
        ns: str,
        name: str,
        content_type: str,
        raw: bytes,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> Result:
        with self.cond:
            current = copy.deepcopy(self._existing(res, ns, name))
            patched = apply_patch(current, content_type, raw)
            obj, unknown = res.decode(patched)
            warnings = self._warnings(unknown, field_validation)
            return self._update(res, ns, name, obj, dry_run, warnings, allow_create=False)

    def _update(
        self,
        res: Resource,
        ns: str,
        name: str,
        obj: dict[str, Any],
        dry_run: bool,
        warnings: tuple[str, ...],
        allow_create: bool,
    ) -> Result:
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise e.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name "
                f"on the URL ({name})"
            )
        self._check_namespace(obj, ns)
        with self.cond:
            old = self._objects.get((res.plural, ns), {}).get(name)
            body_uid = meta.get("uid", "")
            if old is None:
                if not allow_create:
                    raise e.not_found(res.plural, name, res.group)
                if body_uid:
                    raise _precondition_failed(res, name, "UID", body_uid, "")
                meta.pop("resourceVersion", None)
                return Result(201, self._create_locked(res, ns, obj, dry_run), warnings)
            old_meta = old["metadata"]
            if body_uid and body_uid != old_meta["uid"]:
                raise _precondition_failed(res, name, "UID", body_uid, old_meta["uid"])
            body_rv = meta.get("resourceVersion", "")
            if not body_rv and not res.allow_unconditional_update:
                raise e.invalid_object(
                    res.plural,
                    name,
                    [e.invalid("metadata.resourceVersion", 0, "must be specified for an update")],
                    res.group,
                )
            if body_rv and not body_rv.isdigit():
                raise e.bad_request(f'invalid resource version "{body_rv}"')
            if body_rv and body_rv != old_meta["resourceVersion"]:
                raise e.conflict(res.plural, name, group=res.group)
            meta["uid"] = old_meta["uid"]
            meta["creationTimestamp"] = old_meta["creationTimestamp"]
            meta["resourceVersion"] = old_meta["resourceVersion"]
            meta.pop("generateName", None)
            if old_meta.get("generateName"):
                meta["generateName"] = old_meta["generateName"]
            self._raise_if_invalid(res, obj, old)
            if obj == old or dry_run:
                # etcd skips a write whose bytes are unchanged: no new resourceVersion.
                return Result(200, copy.deepcopy(obj), warnings)
            return Result(200, self._commit(res, ns, obj, "MODIFIED"), warnings)

    def delete(
        self, res: Resource, ns: str, name: str, options: Any, dry_run: bool = False
    ) -> dict[str, Any]:
        if options is not None and not isinstance(options, dict):
            raise e.bad_request("DeleteOptions must be a JSON object")
        pre = (options or {}).get("preconditions") or {}
        with self.cond:
            old = self._existing(res, ns, name)
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise _precondition_failed(res, name, "UID", pre["uid"], meta["uid"])
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise _precondition_failed(
                    res, name, "ResourceVersion", pre["resourceVersion"], meta["resourceVersion"]
                )
            if not dry_run:
                self._commit(res, ns, copy.deepcopy(old), "DELETED")
            details = {"name": name, "kind": res.plural, "uid": meta["uid"]}
            if res.group:
                details["group"] = res.group
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }

    def delete_collection(
        self,
        res: Resource,
        ns: str,
        label_selector: str | None,
        field_selector: str | None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self.cond:
            doomed, _ = self.select(res, ns, label_selector, field_selector)
            if not dry_run:
                for obj in doomed:
                    self._commit(res, ns, obj, "DELETED")
            return {
                "kind": res.list_kind,
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": doomed,
            }

    def put_raw(self, res: Resource, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores obj as given (no validation), filling in system metadata."""
        obj = copy.deepcopy(obj)
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = ns
        with self.cond:
            old = self._objects.get((res.plural, ns), {}).get(meta["name"])
            meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            meta.setdefault(
                "creationTimestamp", old["metadata"]["creationTimestamp"] if old else _now()
            )
            return self._commit(res, ns, obj, "MODIFIED" if old else "ADDED")

    def objects(self, res: Resource, ns: str) -> dict[str, dict[str, Any]]:
        with self.cond:
            return copy.deepcopy(self._objects.get((res.plural, ns), {}))

    # --- watch -----------------------------------------------------------------------------

    def events_after(self, rv: int) -> builtins.list[Event] | None:
        """Events with resourceVersion > rv, or None if history no longer reaches back that far."""
        with self.cond:
            truncated = len(self._events) == self._events.maxlen
            if truncated and rv < self._events[0].rv - 1:
                return None
            return [ev for ev in self._events if ev.rv > rv]

    def wait(self, rv: int, timeout: float) -> None:
        """Blocks until a write after rv, close(), or timeout."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self._rv > rv, timeout)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
