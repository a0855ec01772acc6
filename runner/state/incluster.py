"""The Kubernetes API from inside a pod: the service account's token and CA, read here, and
HTTPS through the standard library (`http.client` and `ssl`), with no `kubernetes` package.

A pipeline pod opens its ConfigMap store on every run, and the `kubernetes` package's loaders
cost it a quarter of a second and ~10 MB (the kubeconfig loader pulls in yaml, requests, oauthlib,
dateutil, google-auth); even urllib3 alone costs several times what `http.client` does (see
bench/README.md, section 8). Inside a pod there is nothing to load: the service's host and port
are in the environment, the credentials are files. This module is what client-go's
`rest.InClusterConfig` does:

- the API server is `https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT` (an IPv6 host
  gets its brackets), its certificate verified against the service account's `ca.crt`, always;
- the bearer token is the service account's `token` file, re-read when the file changes (a
  projected token is rotated by the kubelet, hourly by default, by swapping a symlink) and at
  least every minute, as client-go's cached token source does; a 401 re-reads it and, when it
  changed, sends the request again once;
- a `ca.crt` that changed since it was read is read again when the server's certificate is
  refused, once.

The service account's folder is /var/run/secrets/kubernetes.io/serviceaccount; the tests (and
the bench) point RUNNER_SERVICEACCOUNT_DIR at a folder of their own, as nothing else can.
"""

from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from runner.base.errors import Problem, StoreError
from runner.platform.kratix import SERVICE_ACCOUNT_VARIABLE, service_account_dir

DIR_VARIABLE = SERVICE_ACCOUNT_VARIABLE  # for tests: where the service account's files are
TOKEN_REFRESH = 60.0  # seconds: a token is re-read at least this often (client-go: 1 minute)
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
_HINT = (
    "a pod gets its service account's token and ca.crt unless automountServiceAccountToken is "
    "false; outside a pod, unset KUBERNETES_SERVICE_HOST and use a kubeconfig"
)


def in_pod(environ: Mapping[str, str]) -> bool:
    """Inside a pod: the API is reached through its service account (as before, the host's
    variable decides; the port and the files missing are then an error saying which)."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST"))


def join_host_port(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets (Go's net.JoinHostPort)."""
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host or "%" in host else f"{host}:{port}"


class ApiStatus(Exception):
    """A non-2xx answer: its status, reason, body (text) and headers, whichever transport
    got it (status 0: the TLS handshake failed, through the `kubernetes` package)."""

    def __init__(self, status: int, reason: str, body: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"({status})\nReason: {reason}")
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = {str(k).lower(): str(v) for k, v in headers.items()}  # names: lower case


class _File:
    """A file read again when it changed (another inode, size or mtime: the kubelet swaps the
    projected volume's `..data` symlink) or when `max_age` has passed."""

    def __init__(self, path: str, what: str, max_age: float | None = None) -> None:
        self.path = path
        self.what = what
        self.max_age = max_age
        self.text = ""
        self._signature: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self.read()

    def read(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as fh:
                info = os.fstat(fh.fileno())
                text = fh.read().strip()
        except FileNotFoundError:
            raise _no_config(
                f"the service account's {self.what} {self.path} does not exist"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise _no_config(
                f"the service account's {self.what} {self.path} can't be read: {why}"
            ) from None
        if not text:
            raise _no_config(f"the service account's {self.what} {self.path} is empty")
        self.text = text
        self._signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        self._read_at = time.monotonic()
        return text

    def changed(self) -> bool:
        try:
            info = os.stat(self.path)
        except OSError:
            return False  # keep what we have; a request will say if it no longer works
        return (info.st_ino, info.st_size, info.st_mtime_ns) != self._signature

    def current(self) -> str:
        """The text, read again if the file changed or is older than max_age."""
        stale = self.max_age is not None and time.monotonic() - self._read_at >= self.max_age
        if stale or self.changed():
            try:
                self.read()
            except StoreError:
                if not self.text:
                    raise  # keep the last good token while the kubelet swaps the file
        return self.text


class InClusterTransport:
    """Requests to the API server with the pod's service account; a small pool of keep-alive
    connections (the lease's renewals run beside the store's requests)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        host = (environ.get("KUBERNETES_SERVICE_HOST") or "").strip()
        port_text = (environ.get("KUBERNETES_SERVICE_PORT") or "").strip()
        if not port_text:
            raise _no_config("KUBERNETES_SERVICE_HOST is set but KUBERNETES_SERVICE_PORT is not")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise _no_config(
                f'KUBERNETES_SERVICE_PORT is "{port_text}", not a port number'
            ) from None
        self.hostname = host.strip("[]")
        self.port = port
        self.host = f"https://{join_host_port(self.hostname, port)}"
        folder = service_account_dir(environ)
        self._token = _File(os.path.join(folder, "token"), "token", TOKEN_REFRESH)
        self._ca = _File(os.path.join(folder, "ca.crt"), "CA certificate")
        self._context = self._ssl_context()
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            # Only the cluster's CA is trusted, not the system's (as client-go: its CA file).
            context = ssl.create_default_context(cadata=self._ca.text)
        except (ssl.SSLError, ValueError) as exc:
            raise _no_config(
                f"the service account's CA certificate {self._ca.path} is not a PEM "
                f"certificate ({type(exc).__name__})"
            ) from None
        return context  # CERT_REQUIRED and check_hostname: always verified

    # -- the transport's interface (runner/state/kubeapi.py) ---------------------------------
    def send(self, method: str, path: str, body: bytes | None, accept: str) -> bytes:
        """The body of a 2xx answer; ApiStatus for any other; OSError or HTTPException when
        the connection failed; StoreError when the server's certificate is not trusted."""
        token = self._token_now()
        try:
            status, reason, headers, data = self._exchange(method, path, body, accept, token)
        except ssl.SSLCertVerificationError as exc:
            if not self._ca.changed():
                raise self._untrusted(exc) from None
            self._ca.read()  # the CA was rotated: trust the new one, once
            with self._lock:
                self._context = self._ssl_context()
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
            try:
                status, reason, headers, data = self._exchange(method, path, body, accept, token)
            except ssl.SSLCertVerificationError as again:
                raise self._untrusted(again) from None
        if status == 401 and self._token.changed():
            # A rotated token: client-go drops its cached token on 401; send once more.
            fresh = self._token_now(force=True)
            if fresh != token:
                status, reason, headers, data = self._exchange(method, path, body, accept, fresh)
        if not 200 <= status <= 299:
            raise ApiStatus(status, reason, data.decode("utf-8", "replace"), headers)
        return data

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- internals ---------------------------------------------------------------------------
    def _token_now(self, force: bool = False) -> str:
        with self._lock:
            if force:
                self._token.read()
            return self._token.current()

    def _exchange(
        self, method: str, path: str, body: bytes | None, accept: str, token: str
    ) -> tuple[int, str, dict[str, str], bytes]:
        conn = self._connection()
        headers = {
            "Accept": accept,
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "User-Agent": "kratix-step-runner",
        }
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        answer = (response.status, response.reason, dict(response.getheaders()), data)
        if response.will_close:
            conn.close()
        else:
            with self._lock:
                self._idle.append(conn)
        return answer

    def _connection(self) -> http.client.HTTPSConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if _usable(conn):
                    return conn
                conn.close()
            context = self._context
        conn = http.client.HTTPSConnection(
            self.hostname, self.port, timeout=CONNECT_TIMEOUT, context=context
        )
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(READ_TIMEOUT)
        return conn

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> StoreError:
        why = exc.verify_message or exc.reason or "verification failed"
        return StoreError(
            Problem(
                f"the Kubernetes API at {self.host} presented a certificate that the service "
                f"account's CA ({self._ca.path}) does not trust: {why}",
                hint="the pod's ca.crt must be the cluster's CA; TLS verification is never "
                "turned off",
            )
        )


def _usable(conn: Any) -> bool:
    """An idle keep-alive connection the server has not closed (nothing to read on it yet),
    as urllib3 checks before reusing one."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _no_config(message: str) -> StoreError:
    return StoreError(Problem(f"no Kubernetes configuration: {message}", hint=_HINT))
