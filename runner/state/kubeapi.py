"""The HTTP client of the Kubernetes API: raw JSON requests with bounded retries for
transient failures and every refusal explained in words an operator can act on. Apart from the
stores so that they speak in objects (get, create, replace, delete) and the lease lock shares
the same transport, retries and error messages.

Each request's answer is awaited in slices, the request itself running on a daemon thread,
so that a signal is acted on while the API hangs: after a signal, waits on the API end within
the grace period (runner/platform/interrupts.py) with Interrupted, the request left to its thread.

Objects travel as plain dicts: no model classes are built, which keeps large states cheap, and
`binaryData` stays exactly as the server sent it. Requests go through a Transport: in a pod, the
service account's (runner/state/incluster.py: the standard library's HTTPS, nothing of the
`kubernetes` package imported); elsewhere the kubeconfig's, where the `kubernetes` package
supplies the configuration, the credentials and the connection pool and requests go to that
pool directly. Bodies are serialised here once (the ApiClient would copy each body into a
sanitised dict, dump it to a str and encode that again). A caller may pass a body already
serialised (`bytes`): the state store builds each chunk object's ~1.2 MB JSON around the
chunk's base64 that way. Answers are parsed from the response bytes, and not at all when the
caller doesn't want them (a chunk object the server echoes back).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from runner.base.errors import Interrupted, Problem, StoreError
from runner.platform import interrupts
from runner.platform.settings import KILL_GRACE, KUBE_ATTEMPTS, format_duration
from runner.state.base import NotFound
from runner.state.kubeconfig import kubeconfig_files

# resource -> (API prefix, API group for RBAC, kind)
RESOURCES = {
    "configmaps": ("/api/v1", "", "ConfigMap"),
    "secrets": ("/api/v1", "", "Secret"),
    "leases": ("/apis/coordination.k8s.io/v1", "coordination.k8s.io", "Lease"),
}
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_TRANSIENT = {429, 500, 502, 503, 504}


class NoAnswer(StoreError):
    """No attempt got an answer (connection errors, 5xx, 429): a write may have landed all the
    same, so a caller that can tell its own write reads back before calling it failed."""


class Conflict(Exception):
    """409: the object changed (resourceVersion) or already exists."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Transport(Protocol):
    """How requests reach the API server: `host` (its URL, for messages), `send` (the body of a
    2xx answer; an error with `status`, `reason`, `body` and `headers` for any other answer; a
    connection error when there was none) and `close`."""

    @property
    def host(self) -> str: ...

    def send(self, method: str, path: str, body: bytes | None, accept: str) -> bytes: ...

    def close(self) -> None: ...


def load_client(environ: Mapping[str, str]) -> Transport:
    """The transport to the API: in a pod, the service account's (runner/state/incluster.py,
    no `kubernetes` package); elsewhere the kubeconfig's, through the `kubernetes` package."""
    from runner.state.incluster import InClusterTransport, in_pod

    if in_pod(environ):
        return InClusterTransport(environ)
    return ClientTransport(_kubeconfig_client(environ))


def _kubeconfig_client(environ: Mapping[str, str]) -> Any:
    """An ApiClient from the kubeconfig."""
    from runner.state.kubeclient_import import client_modules

    configuration_mod, api_client_mod, config = client_modules()
    configuration = configuration_mod.Configuration()
    named = environ.get("KUBECONFIG") or None
    files = None
    if named is not None:
        # A clear error naming the file that is not a kubeconfig; the rest, for the loader.
        files = os.pathsep.join(kubeconfig_files(named))
    try:
        config.load_kube_config(config_file=files, client_configuration=configuration)
    except config.ConfigException as exc:
        raise StoreError(
            Problem(
                f"no Kubernetes configuration: {exc}",
                hint="inside a pod the service account is used; elsewhere set KUBECONFIG, or keep state "
                "locally with --state-store local:DIR",
            )
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
        # The loader's own checks stop at the file's shape: an entry without its fields
        # (a cluster with no server) ends here. Only the exception's kind and first line are
        # told: a kubeconfig holds credentials.
        where = f"KUBECONFIG {named}" if named else "the kubeconfig (~/.kube/config)"
        raise StoreError(
            Problem(
                f"{where} is not a usable kubeconfig: {type(exc).__name__}: {_first_line(exc)}",
                hint="check it with `kubectl config view`",
            )
        ) from None
    if not configuration.host or configuration.host.rstrip("/").endswith(("://", ":")):
        where = f"KUBECONFIG {named}" if named else "the kubeconfig"
        raise StoreError(
            Problem(
                f"{where} names no API server for its current context",
                hint="set the cluster's server: (`kubectl config view --minify` shows it)",
            )
        )
    configuration.retries = False  # we retry ourselves, with backoff and only where safe
    return api_client_mod.ApiClient(configuration)


class ClientTransport:
    """Requests through a `kubernetes` ApiClient (configured from a kubeconfig): its
    configuration, credentials (refreshed by its hooks) and urllib3 connection pool."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()

    def send(self, method: str, path: str, body: bytes | None, accept: str) -> bytes:
        """The response body of one request, sent through the ApiClient's connection pool with
        its headers and credentials (as ApiClient.call_api sends them, less the copies). Raises
        ApiStatus for a non-2xx answer (status 0: the TLS handshake failed)."""
        import urllib3

        from runner.state.incluster import ApiStatus

        api = self.api
        headers = {"Content-Type": "application/json", "Accept": accept}
        headers.update(api.default_headers)
        if api.cookie:
            headers["Cookie"] = api.cookie
        api.update_params_for_auth(headers, [], ["BearerToken"])
        try:
            response = api.rest_client.pool_manager.request(
                method,
                api.configuration.host + path,
                body=body,
                headers=headers,
                preload_content=False,
                timeout=urllib3.Timeout(connect=5, read=60),
            )
        except urllib3.exceptions.SSLError as exc:
            # As the ApiClient reports it (status 0): a retry will not fix a certificate.
            raise ApiStatus(0, f"{type(exc).__name__}\n{exc}", "", {}) from None
        data: bytes = response.data
        if not 200 <= response.status <= 299:
            text = data.decode("utf-8", "replace")
            raise ApiStatus(response.status, response.reason or "", text, response.headers)
        return data


class Kube:
    """A thin JSON client for the few resources the state stores use."""

    def __init__(
        self,
        transport: Transport,
        attempts: int = 6,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        grace: float = KILL_GRACE.default,
    ) -> None:
        self.transport = transport
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.grace = (
            grace  # how long API waits go on after a signal (runner/platform/interrupts.py)
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Kube:
        attempts = KUBE_ATTEMPTS.read(environ)
        return cls(load_client(environ), attempts=attempts, grace=KILL_GRACE.read(environ))

    @property
    def host(self) -> str:
        return self.transport.host

    def close(self) -> None:
        try:
            self.transport.close()
        except Exception:
            pass

    # -- verbs -----------------------------------------------------------------------------
    def get(
        self, resource: str, namespace: str, name: str, *, within: float | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.request("GET", resource, namespace, name, within=within)
        except NotFound:
            return None

    def list_metadata(
        self, resource: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """The metadata (name, labels, ...) of the objects with these labels; metadata only, so
        listing large chunk objects costs no more than their names. A server or proxy may
        ignore the selector: callers check the labels themselves before acting on an item."""
        from urllib.parse import urlencode

        answer = self.request(
            "GET",
            resource,
            namespace,
            None,
            query=urlencode({"labelSelector": label_selector}),
            accept=_METADATA_ONLY,
        )
        return [item.get("metadata") or {} for item in answer.get("items") or []]

    def create(
        self, resource: str, namespace: str, body: dict[str, Any] | bytes, *, answer: bool = True
    ) -> dict[str, Any]:
        """POST `body` (a dict, or its JSON already serialised); the created object, or {} with
        answer=False (the server's echo of a big object is read but not parsed)."""
        return self.request("POST", resource, namespace, None, body, answer=answer)

    def replace(
        self,
        resource: str,
        namespace: str,
        name: str,
        body: dict[str, Any] | bytes,
        *,
        within: float | None = None,
    ) -> dict[str, Any]:
        return self.request("PUT", resource, namespace, name, body, within=within)

    def delete(
        self, resource: str, namespace: str, name: str, resource_version: str | None = None
    ) -> bool:
        body = (
            {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        )
        try:
            self.request("DELETE", resource, namespace, name, body)
            return True
        except NotFound:
            return False

    # -- transport ---------------------------------------------------------------------------
    def request(
        self,
        method: str,
        resource: str,
        namespace: str,
        name: str | None,
        body: Any = None,
        *,
        answer: bool = True,
        query: str = "",
        accept: str = "application/json",
        within: float | None = None,
    ) -> dict[str, Any]:
        """One API call; retried on 5xx/429/connection errors. Raises NotFound for 404,
        Conflict for 409, StoreError for everything a retry can't fix. `body` is a JSON-able
        value or its JSON as bytes; with answer=False the response body is not parsed ({}).

        Waits end at the grace period's end once a signal came (Interrupted); with `within`,
        the call ends after that many seconds whatever happens (NoAnswer, or Interrupted after
        a signal), and the grace period doesn't apply: a lock's release, best effort."""
        prefix = RESOURCES[resource][0]
        path = f"{prefix}/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
        if query:
            path += f"?{query}"
        payload: bytes | None
        if body is None or isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        delay = self.backoff
        last = ""
        limit = None if within is None else time.monotonic() + within
        call = _Call(self, f"{method} {resource} in {namespace}", limit)
        for attempt in range(1, self.attempts + 1):
            try:
                data = call.wait(lambda: self._send(method, path, payload, accept))
                return json.loads(data) if data and answer else {}
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status is None:
                    if not _is_connection_error(exc):
                        raise
                    last = f"{type(exc).__name__}: {_first_line(exc)}"
                elif status in _TRANSIENT:
                    last = f"{status} {_status_message(exc)}".strip()
                    retry_after = _retry_after(exc)
                    if retry_after is not None:
                        delay = max(delay, min(retry_after, self.max_backoff))
                else:
                    self._raise_for(exc, method, resource, namespace, name)
            if attempt < self.attempts:
                # Jitter: concurrent runs don't retry in step.
                call.sleep(delay * (0.5 + random.random()), last)
                delay = min(delay * 2, self.max_backoff)
        raise NoAnswer(
            Problem(
                f"the Kubernetes API at {self.host} did not answer {method} {resource} in {namespace} "
                f"after {self.attempts} attempts: {last}",
                hint="the API server may be overloaded or unreachable; Kratix will retry the workflow",
            )
        )

    def _send(self, method: str, path: str, body: bytes | None, accept: str) -> bytes:
        """One attempt, through the transport (a seam the tests use to lose answers)."""
        return self.transport.send(method, path, body, accept)

    def _raise_for(
        self, exc: Any, method: str, resource: str, namespace: str, name: str | None
    ) -> None:
        status = exc.status
        message = _status_message(exc)
        reason = _status_reason(exc)
        what = (
            f"{RESOURCES[resource][2]} {namespace}/{name}" if name else f"{resource} in {namespace}"
        )
        if status == 404:
            if "namespaces" in message and f'"{namespace}" not found' in message:
                raise StoreError(f'namespace "{namespace}" does not exist (needed for {what})')
            raise NotFound(message)
        if status == 409:
            raise Conflict(reason, message)
        if status == 403:
            raise StoreError(
                forbidden_problem(_VERBS.get(method, method.lower()), resource, namespace, message)
            )
        if status == 401:
            raise StoreError(
                Problem(
                    f"the Kubernetes API at {self.host} rejected the credentials (401 Unauthorized)",
                    hint="check the service account token or the kubeconfig user",
                )
            )
        if status == 422:
            raise StoreError(
                Problem(
                    f"the API server refused {what}: {message}",
                    hint="names must be DNS-1123 subdomains, and one object holds at most 1 MiB",
                )
            )
        if status == 413:
            raise StoreError(f"the API server refused {what}: the request is too large ({message})")
        raise StoreError(
            f"the API server answered {status} to {method} {what}: {message or reason}"
        )


class _Call:
    """The waits of one API call (its attempts' answers and the backoff between them), each
    ended by the call's deadline: the grace period's end once a signal came, or `limit`."""

    def __init__(self, kube: Kube, what: str, limit: float | None) -> None:
        self.kube = kube
        self.what = what
        self.limit = limit

    def deadline(self) -> float | None:
        if self.limit is None:
            # Kept once known: a background thread's deadline is its own.
            self.limit = interrupts.api_deadline(self.kube.grace)
        return self.limit

    def wait(self, send: Any) -> bytes:
        """What `send()` returns (or raises), awaited so that the deadline is kept however
        long the server takes to answer."""
        self._check("")
        data: bytes = interrupts.on_thread(
            send, lambda: self._check("no answer yet"), "kube-request"
        )
        return data

    def sleep(self, seconds: float, last: str) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._check(last)
            time.sleep(min(left, interrupts.SLICE_SECONDS))
        self._check(last)

    def _check(self, last: str) -> None:
        deadline = self.deadline()
        if deadline is None or time.monotonic() < deadline:
            return
        signum = interrupts.received()
        why = f" ({last})" if last else ""
        if signum is None:
            raise NoAnswer(
                f"the Kubernetes API at {self.kube.host} did not answer {self.what} in time{why}"
            )
        stopped = Interrupted(signum)
        grace = format_duration(max(self.kube.grace, interrupts.MIN_API_GRACE))
        stopped.problems = [
            Problem(
                f"{stopped.problems[0].message}: stopped waiting for the Kubernetes API to "
                f"answer {self.what}{why}",
                hint=f"after a signal, requests to the API get {grace} (RUNNER_KILL_GRACE)",
            )
        ]
        stopped.args = (stopped.problems[0].format(),)
        raise stopped


def forbidden_problem(verb: str, resource: str, namespace: str, message: str) -> Problem:
    """403 explained: which verb on which resource where, for whom, and the RBAC that grants it."""
    import re

    user = re.search(r'User "([^"]+)"', message)
    who = user.group(1) if user else "this pod's service account"
    group = RESOURCES[resource][1]
    grant = (
        f'add to the Pipeline: rbac: {{permissions: [{{apiGroups: ["{group}"], verbs: [{verb}], '
        f"resources: [{resource}]}}]}} (`runner rbac` prints what every step needs)"
    )
    return Problem(
        f'forbidden: {who} cannot {verb} {resource} in namespace "{namespace}"', hint=grant
    )


def _is_connection_error(exc: Exception) -> bool:
    import http.client

    if isinstance(exc, (http.client.HTTPException, OSError)):  # ConnectionError, TimeoutError
        return True
    urllib3 = sys.modules.get("urllib3")  # only there when the kubeconfig's transport is
    return urllib3 is not None and isinstance(exc, urllib3.exceptions.HTTPError)


def _body(exc: Any) -> dict[str, Any]:
    try:
        loaded = json.loads(exc.body or "{}")
        return loaded if isinstance(loaded, dict) else {}
    except (TypeError, ValueError):
        return {}


def _status_message(exc: Any) -> str:
    return str(_body(exc).get("message") or getattr(exc, "reason", "") or "")


def _status_reason(exc: Any) -> str:
    return str(_body(exc).get("reason") or "")


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
