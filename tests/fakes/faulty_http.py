"""A fault-injecting HTTP proxy on loopback, in front of any HTTP server (the moto S3 server,
a MinIO): clients talk to the proxy as if it were the server, and it fails a share of their
requests the way networks and overloaded servers do.

    with S3Server() as s3, FaultProxy(s3.url) as proxy:
        env = {"AWS_ENDPOINT_URL": proxy.url, ...}
        proxy.fail(rate=0.25, status=503, only=["GET", "PUT"], seed=7)

Faults, drawn per request in this order (a seeded `random.Random`, so a run is repeatable):
  reset_rate          the connection is reset before the request is forwarded (nothing happened)
  rate + status       an S3-style error answer (503 ServiceUnavailable by default), not forwarded
  lost_response_rate  forwarded (the server did it), then the connection is reset: the answer
                      is lost
  latency             seconds added before every answer
`only` limits faults to these HTTP methods, `suffix` to paths ending so (an object key), and
`times` to that many faults in all. Requests are forwarded byte for byte, Host header included,
so SigV4 signatures made for the proxy's address still verify upstream.

A process under test can switch faults on itself at a known point: POST the same keywords as
JSON to `PROXY/_fake/fail` (what tests/reliability/helpers.py's counter step does with
`BUMP_THEN_FAIL`). `requests` records (method, path, status) of each request, 0 for a reset or
a lost answer.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
_REASONS = {503: "ServiceUnavailable", 500: "InternalError", 429: "SlowDown"}


class _Abort(Exception):
    """Reset the client's connection now."""


class FaultProxy:
    """A reverse proxy to `upstream` on 127.0.0.1; a context manager (or start()/stop())."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._faults: dict[str, Any] = {}
        self._random = random.Random(0)
        self._left: int | None = None
        self._server: ThreadingHTTPServer | None = None
        self.delayed = 0  # requests held by `latency` right now

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults --------------------------------------------------------------------------------
    def fail(self, **spec: Any) -> None:
        """Fail requests from now on as `spec` says (see the module's docstring); no keywords:
        no more faults."""
        known = {"rate", "status", "reset_rate", "lost_response_rate", "latency", "only",
                 "suffix", "times", "seed"}  # fmt: skip
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault keywords: {sorted(unknown)}")
        with self._lock:
            self._faults = dict(spec)
            self._random = random.Random(spec.get("seed", 0))
            self._left = spec.get("times")

    def _draw(self, method: str, path: str) -> str | None:
        """The fault for this request: "reset", "status", "lost" or None."""
        with self._lock:
            f = self._faults
            if not f or (self._left is not None and self._left <= 0):
                return None
            if f.get("only") and method not in f["only"]:
                return None
            if f.get("suffix") and not path.split("?")[0].endswith(f["suffix"]):
                return None
            fault = None
            if self._random.random() < f.get("reset_rate", 0):
                fault = "reset"
            elif self._random.random() < f.get("rate", 0):
                fault = "status"
            elif self._random.random() < f.get("lost_response_rate", 0):
                fault = "lost"
            if fault is not None and self._left is not None:
                self._left -= 1
            return fault

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def count(self, method: str | None = None, suffix: str = "", status: int | None = None) -> int:
        """Requests seen with this method, path ending and answer status (None: any)."""
        with self._lock:
            return sum(
                1
                for m, p, s in self.requests
                if (method is None or m == method)
                and p.split("?")[0].endswith(suffix)
                and (status is None or s == status)
            )

    def injected(self) -> int:
        """Requests failed on purpose: resets, lost answers and error answers."""
        status = self._faults.get("status", 503)
        with self._lock:
            return sum(1 for *_, s in self.requests if s in (0, status, 503))


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Abort:
            self._reset()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def _reset(self) -> None:
        """Close the client's connection with a TCP reset, nothing answered."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self) -> None:
        body = self._body()
        method, path = self.command, self.path
        if path.startswith("/_fake/fail"):
            self.owner.fail(**json.loads(body or b"{}"))
            self._answer(200, b"ok\n", [("Content-Type", "text/plain")])
            return
        fault = self.owner._draw(method, path)
        latency = self.owner._faults.get("latency")
        if latency:
            with self.owner._lock:
                self.owner.delayed += 1
            time.sleep(latency)
            with self.owner._lock:
                self.owner.delayed -= 1
        if fault == "reset":
            self.owner.record(method, path, 0)
            raise _Abort
        if fault == "status":
            status = int(self.owner._faults.get("status", 503))
            code = _REASONS.get(status, "InternalError")
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message>"
                f"<Resource>{path}</Resource><RequestId>0</RequestId></Error>"
            ).encode()
            self.owner.record(method, path, status)
            self._answer(status, xml, [("Content-Type", "application/xml")])
            return
        upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            if body and not any(k.lower() == "content-length" for k, _ in headers):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
            data = answer.read()
            reply = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
        finally:
            upstream.close()
        if fault == "lost":
            self.owner.record(method, path, 0)
            raise _Abort
        self.owner.record(method, path, answer.status)
        if method != "HEAD":
            reply = [(k, v) for k, v in reply if k.lower() != "content-length"]
            reply.append(("Content-Length", str(len(data))))
        self._answer(answer.status, data, reply, head=method == "HEAD", reason=answer.reason)

    def _answer(
        self,
        status: int,
        data: bytes,
        headers: list[tuple[str, str]],
        *,
        head: bool = False,
        reason: str | None = None,
    ) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if not head and not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy
