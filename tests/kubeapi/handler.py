"""HTTP request handling: routing, the verbs, watch streams, and the /_fake/ controls."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import discovery
from . import errors as e
from .control import user_for
from .patch import JSON_PATCH, MERGE_TYPES
from .resources import RESOURCES, Resource
from .selectors import field_matcher, label_matcher
from .validation import is_dns1123_label

if TYPE_CHECKING:
    from .server import FakeKubeAPI, KubeHTTPServer

MAX_REQUEST_BODY = 3 * 1024 * 1024  # the API server's limit on a request body
WATCH_POLL = 0.5


@dataclass(frozen=True)
class Route:
    verb: str  # get list watch create update patch delete deletecollection; "" = discovery
    resource: Resource | None = None
    namespace: str | None = None
    name: str | None = None


def _route(method: str, path: str, query: dict[str, str]) -> Route:
    """Maps a request to a verb on a resource; ApiError 404/405 for anything else."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    served: tuple[str, ...]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
        served = ("configmaps", "secrets")
    elif parts[:3] == ["apis", discovery.COORDINATION, "v1"]:
        rest = parts[3:]
        served = ("leases",)
    else:
        rest, served = [], ()
    if rest[:1] == ["namespaces"] and len(rest) == 2:
        if method != "GET":
            raise e.method_not_allowed(method)
        return Route("get", None, rest[1], rest[1])
    if rest[:1] == ["namespaces"] and len(rest) in (3, 4) and rest[2] in served:
        res, ns, name = RESOURCES[rest[2]], rest[1], (rest[3] if len(rest) == 4 else None)
    elif len(rest) == 1 and rest[0] in served:
        res, ns, name = RESOURCES[rest[0]], None, None  # across all namespaces: list and watch only
    else:
        if method == "GET" and discovery.document(path.rstrip("/") or "/", "") is not None:
            return Route("")
        raise e.path_not_found()
    watch = query.get("watch", "") in ("1", "t", "T", "true", "TRUE", "True")  # Go ParseBool
    if name is None:
        verbs = {
            "GET": "watch" if watch else "list",
            "POST": "create",
            "DELETE": "deletecollection",
        }
        if ns is None:
            verbs = {"GET": verbs["GET"]}
    else:
        verbs = {
            "GET": "watch" if watch else "get",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }
    if method not in verbs:
        raise e.method_not_allowed(method)
    return Route(verbs[method], res, ns, name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1.31"
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection is dropped after this
    server: KubeHTTPServer

    @property
    def api(self) -> FakeKubeAPI:
        return self.server.api

    def setup(self) -> None:
        super().setup()
        self.api._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.api._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.api.verbose:
            sys.stderr.write(f"kubeapi: {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # --- request flow ----------------------------------------------------------------------

    def _serve(self) -> None:
        url = urlsplit(self.path)
        self._path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if self._path.startswith("/_fake/"):
            self._admin(query)
            return
        try:
            body = self._read_body()
        except e.ApiError as err:
            self._send_error(err)
            return
        except (OSError, ValueError):
            self.close_connection = True
            return
        route_error: e.ApiError | None
        try:
            route = _route(self.command, self._path, query)
        except e.ApiError as err:
            route, route_error = Route(""), err
        else:
            route_error = None
        verb = route.verb or {
            "GET": "get",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(self.command, "get")
        faults = self.api._faults
        plural = route.resource.plural if route.resource is not None else None
        if faults.applies(verb, plural):
            if faults.hang:
                with self.api._requests_lock:
                    self.api.hanging += 1
                faults.released.wait()
                self._reset()  # the hang ends with the connection dropped, nothing done
                return
            if faults.latency:
                time.sleep(faults.latency)
            if faults.roll(faults.reset_rate):
                self._reset()
                return
            if faults.roll(faults.rate):
                self._send_error(faults.error())
                return
        if route_error is not None:
            self._send_error(route_error)
            return
        if route.verb == "watch":
            self._watch(route, query)
            return
        try:
            code, answer, headers = self._dispatch(route, query, body)
        except e.ApiError as err:
            code, answer, headers = err.code, err.status(), err.headers
        except Exception as exc:  # a bug here answers 500, as the real server would
            traceback.print_exc()
            crash = e.internal(f"{type(exc).__name__}: {exc}")
            code, answer, headers = crash.code, crash.status(), {}
        if faults.applies(verb, plural) and faults.roll(faults.lost_response_rate):
            self._reset()  # the write happened; the client never hears about it
            return
        self._send(code, answer, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                chunk = self.rfile.read(length + 2)[:length]
                if not length:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                size += length
                if size <= MAX_REQUEST_BODY:
                    chunks.append(chunk)
            if size > MAX_REQUEST_BODY:
                raise e.too_large(MAX_REQUEST_BODY)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            while length > 0:  # drain it so the connection stays usable
                got = self.rfile.read(min(length, 1 << 20))
                if not got:
                    raise OSError("client closed the connection mid-body")
                length -= len(got)
            raise e.too_large(MAX_REQUEST_BODY)
        return self.rfile.read(length) if length else b""

    def _dispatch(
        self, route: Route, query: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if not route.verb:
            doc = discovery.document(
                self._path.rstrip("/") or "/",
                f"{self.server.server_name}:{self.server.server_port}",
            )
            return 200, doc, {}
        if route.resource is None:  # GET /api/v1/namespaces/{name}
            if self.api._rules.denies("get", "namespaces", None):
                raise e.forbidden(
                    self._user(), "get", "namespaces", route.namespace or "", route.name
                )
            if not is_dns1123_label(route.name or ""):
                raise e.not_found("namespaces", route.name or "")
            return 200, discovery.namespace(route.name or ""), {}
        res, ns, name = route.resource, route.namespace, route.name
        if self.api._rules.denies(route.verb, res.plural, ns):
            raise e.forbidden(self._user(), route.verb, res.plural, ns or "", name, res.group)
        store = self.api.store
        dry_run = query.get("dryRun") == "All"
        validation = query.get("fieldValidation", "")
        if route.verb == "list":
            limit = int(query.get("limit") or 0) if (query.get("limit") or "0").isdigit() else 0
            answer = store.list(
                res,
                ns,
                None if self.api.ignore_label_selector else query.get("labelSelector"),
                query.get("fieldSelector"),
                limit,
                query.get("continue"),
            )
            if "as=PartialObjectMetadataList" in (self.headers.get("Accept") or ""):
                # Metadata only, as the real server answers this Accept (kubectl uses it too).
                answer = {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": answer.get("metadata", {}),
                    "items": [
                        {
                            "kind": "PartialObjectMetadata",
                            "apiVersion": "meta.k8s.io/v1",
                            "metadata": item["metadata"],
                        }
                        for item in answer.get("items", [])
                    ],
                }
            return 200, answer, {}
        assert ns is not None
        if route.verb == "get":
            return 200, store.get(res, ns, name or ""), {}
        if route.verb == "delete":
            options = self._json(raw) if raw.strip() else None
            dry_run = dry_run or (isinstance(options, dict) and options.get("dryRun") == ["All"])
            return 200, store.delete(res, ns, name or "", options, dry_run), {}
        if route.verb == "deletecollection":
            answer = store.delete_collection(
                res, ns, query.get("labelSelector"), query.get("fieldSelector"), dry_run
            )
            return 200, answer, {}
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if route.verb == "patch":
            if content_type not in (JSON_PATCH, *MERGE_TYPES):
                raise e.unsupported_media_type(content_type)
            result = store.patch(res, ns, name or "", content_type, raw, dry_run, validation)
        else:
            if content_type not in ("", "application/json", "*/*"):
                raise e.unsupported_media_type(content_type)
            body = self._json(raw)
            if route.verb == "create":
                result = store.create(res, ns, body, dry_run, validation)
            else:
                result = store.update(res, ns, name or "", body, dry_run, validation)
        headers = (
            {"Warning": ", ".join(f'299 - "{w}"' for w in result.warnings)}
            if result.warnings
            else {}
        )
        return result.code, result.body, headers

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise e.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None

    def _user(self) -> str:
        return user_for(self.headers.get("Authorization"))

    # --- answers ---------------------------------------------------------------------------

    def _start(self, code: int, headers: dict[str, str]) -> None:
        self.api._record(self.command, self._path, code)  # before the client can see the answer
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in headers.items():
            self.send_header(key, value)

    def _send(self, code: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(answer, separators=(",", ":")).encode()
        self._start(code, headers or {})
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _send_error(self, err: e.ApiError) -> None:
        self._send(err.code, err.status(), err.headers)

    def _reset(self) -> None:
        """Drops the connection with a TCP RST and no answer."""
        self.api._record(self.command, self._path, 0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for stream in (self.rfile, self.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        self.connection.close()  # with the makefile() streams closed, this really closes: RST

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        res = route.resource
        assert res is not None
        store = self.api.store
        try:
            if self.api._rules.denies("watch", res.plural, route.namespace):
                raise e.forbidden(
                    self._user(), "watch", res.plural, route.namespace or "", None, res.group
                )
            field_selector = query.get("fieldSelector")
            if route.name:  # the old per-object watch path
                field_selector = ",".join(
                    filter(None, [field_selector, f"metadata.name={route.name}"])
                )
            items, cursor = store.select(
                res, route.namespace, query.get("labelSelector"), field_selector
            )
            start = query.get("resourceVersion", "")
            if start not in ("", "0"):
                if not start.isdigit():
                    raise e.bad_request(f'invalid resource version "{start}"')
                items, cursor = [], int(start)
            timeout = float(query.get("timeoutSeconds") or 1800)
        except e.ApiError as err:
            self._send_error(err)
            return
        self._start(200, {"Transfer-Encoding": "chunked"})
        self.end_headers()
        self.close_connection = True  # a watch ends with its stream
        deadline = time.monotonic() + timeout

        def emit(kind: str, obj: dict[str, Any]) -> None:
            self._chunk(
                json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
            )

        try:
            for item in items:
                item.setdefault("kind", res.kind)
                item.setdefault("apiVersion", res.api_version)
                emit("ADDED", item)
            wanted = _matcher(res, route.namespace, query.get("labelSelector"), field_selector)
            while not store.closed and time.monotonic() < deadline and not self._client_gone():
                events = store.events_after(cursor)
                if events is None:
                    status = e.expired(
                        f"too old resource version: {cursor} ({store.resource_version})"
                    ).status()
                    emit("ERROR", status)
                    break
                for ev in events:
                    cursor = ev.rv
                    if ev.resource == res.plural and wanted(ev.namespace, ev.obj):
                        emit(ev.type, ev.obj)
                store.wait(cursor, min(WATCH_POLL, max(deadline - time.monotonic(), 0)))
            self._chunk(b"")
        except OSError:
            pass

    def _client_gone(self) -> bool:
        """True once the watching client has closed its end (reads as EOF)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # --- cross-process control -------------------------------------------------------------

    def _admin(self, query: dict[str, str]) -> None:
        """/_fake/...: the FakeKubeAPI controls, for a server run from another process."""
        api = self.api
        try:
            raw = self._read_body()
            args = self._json(raw) if raw.strip() else {}
            action = self._path[len("/_fake/") :].strip("/")
            if action == "requests" and self.command == "GET":
                answer: Any = {"requests": [list(r) for r in api.requests]}
            elif action == "reset-counts" and self.command == "POST":
                api.reset_counts()
                answer = {}
            elif action == "fail" and self.command == "POST":
                api.fail(**args)
                answer = {}
            elif action == "forbid" and self.command == "POST":
                api.forbid(**args)
                answer = {}
            elif action == "allow-all" and self.command == "POST":
                api.allow_all()
                answer = {}
            elif action.startswith("objects/") and self.command == "GET":
                _, resource, namespace = action.split("/", 2)
                answer = api.objects(resource, namespace)
            else:
                raise e.path_not_found()
        except (TypeError, ValueError, KeyError) as exc:
            answer, code = e.bad_request(str(exc)).status(), 400
        except e.ApiError as err:
            answer, code = err.status(), err.code
        else:
            code = 200
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _matcher(res: Resource, namespace: str | None, labels: str | None, fields: str | None) -> Any:
    """A predicate over (namespace, object) for watch events."""
    by_label, by_field = label_matcher(labels), field_matcher(fields, res.field_selectors)
    return lambda ns, obj: (
        (namespace is None or ns == namespace) and by_label(obj) and by_field(obj)
    )
