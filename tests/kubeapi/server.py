"""A loopback HTTP server that answers like the Kubernetes API server (ConfigMaps, Secrets, Leases).

The real `kubernetes` client talks to it over HTTP/1.1 keep-alive; tests steer it through
FakeKubeAPI (faults, forbidden verbs, seeded objects) and read back what it saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import sys
import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .control import DEFAULT_USER, Faults, Rules, make_faults, token_for
from .handler import Handler
from .resources import lookup
from .store import Store


class KubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    api: FakeKubeAPI

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a sandbox's DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # clients hanging up, or a connection we reset on purpose
        super().handle_error(request, client_address)


class FakeKubeAPI:
    """A Kubernetes API server on loopback for ConfigMaps, Secrets and Leases."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self.store = Store()
        self.verbose = verbose
        self.requests: list[tuple[str, str, int]] = []
        self._requests_lock = threading.Lock()
        self._faults: Faults = make_faults()
        self._rules = Rules()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._server = KubeHTTPServer((host, port), Handler)
        self._server.api = self
        self._thread: threading.Thread | None = None
        self.host, self.port = self._server.server_name, self._server.server_port
        self.url = f"http://{self.host}:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeKubeAPI:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-kubeapi",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self.store.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # wake handler threads parked on idle keep-alive reads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # --- client configuration ----------------------------------------------------------------

    def write_kubeconfig(
        self, path: str | os.PathLike[str], namespace: str = "default", user: str = DEFAULT_USER
    ) -> str | os.PathLike[str]:
        """Writes a kubeconfig whose context reaches this server as `user` in `namespace`."""
        q = json.dumps  # JSON strings are valid YAML double-quoted scalars
        text = f"""\
apiVersion: v1
kind: Config
clusters:
- name: fake-kubeapi
  cluster:
    server: {q(self.url)}
    insecure-skip-tls-verify: true
users:
- name: {q(user)}
  user:
    token: {q(token_for(user))}
contexts:
- name: fake-kubeapi
  context:
    cluster: fake-kubeapi
    user: {q(user)}
    namespace: {q(namespace)}
current-context: fake-kubeapi
preferences: {{}}
"""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return path

    # --- what happened -----------------------------------------------------------------------

    def _record(self, method: str, path: str, status: int) -> None:
        with self._requests_lock:
            self.requests.append((method, path, status))

    def reset_counts(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> int:
        """Requests seen so far that match every given filter (path: a substring)."""
        with self._requests_lock:
            seen = list(self.requests)
        return sum(
            1
            for m, p, s in seen
            if (method is None or m == method)
            and (path is None or path in p)
            and (status is None or s == status)
        )

    # --- steering ------------------------------------------------------------------------------

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Answers 403 Forbidden to `verb` on `resource` (in `namespace`, or everywhere)."""
        self._rules.forbid(verb, resource, namespace)

    def allow_all(self) -> None:
        self._rules.clear()

    def fail(
        self,
        rate: float = 0.0,
        status: int = 503,
        reset_rate: float = 0.0,
        latency: float = 0.0,
        seed: int | None = None,
        only: Iterable[str] | None = None,
        lost_response_rate: float = 0.0,
    ) -> None:
        """Injects faults into requests whose verb is in `only` (default all); fail() clears.

        Per request, after `latency` seconds: a share `reset_rate` get a TCP reset and no
        answer; else a share `rate` get `status` (a Status body; 429 also sends Retry-After: 1);
        the rest are served, then a share `lost_response_rate` of those get a reset, not the answer
        (the write happened, the client can't know). `seed` makes the draws reproducible.
        Reset requests are recorded with status 0.
        """
        self._faults = make_faults(
            rate, status, reset_rate, latency, seed, only, lost_response_rate
        )

    # --- objects -------------------------------------------------------------------------------

    def objects(self, resource: str, namespace: str) -> dict[str, dict[str, Any]]:
        return self.store.objects(lookup(resource), namespace)

    def get_object(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects(resource, namespace).get(name)

    def put_object(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Seeds obj as given (no validation, faults or RBAC); fills uid and resourceVersion."""
        return self.store.put_raw(lookup(resource), namespace, obj)
