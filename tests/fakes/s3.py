"""A real S3 server on loopback for tests: moto's server mode, with MinIO-like credentials.

``S3Server`` runs :class:`moto.server.ThreadedMotoServer` on 127.0.0.1 on a free port and,
unlike bare moto, checks credentials the way MinIO does: a request must be signed (SigV4)
with the server's user and password, else it gets 403 ``AccessDenied``,
``InvalidAccessKeyId`` or ``SignatureDoesNotMatch``.  Pass ``auth=False`` to accept anything.

    with S3Server() as s3:
        env = {**os.environ, **s3.env}     # MINIO_ENDPOINT, MINIO_USER, MINIO_PASSWORD
        ...
        assert s3.buckets() == ["my-app.default"]

Run one in the foreground (for demos): ``python -m tests.fakes.s3 --port 9000``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import signal
import socket
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

DEFAULT_USER = "minioadmin"
DEFAULT_PASSWORD = "minioadmin-secret-pw"
REGION = "us-east-1"

_ERRORS = {
    "AccessDenied": "Access Denied.",
    "InvalidAccessKeyId": "The Access Key Id you provided does not exist in our records.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature "
    "you provided. Check your key and signing method.",
}


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _environ_header(environ: dict[str, Any], name: str) -> str:
    if name == "content-type":
        return environ.get("CONTENT_TYPE", "")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH", "")
    return environ.get("HTTP_" + name.upper().replace("-", "_"), "")


def check_sigv4(environ: dict[str, Any], user: str, password: str) -> str | None:
    """None if the request is signed with (user, password), else an S3 error code."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "AccessDenied"  # anonymous, or a signature version MinIO would not take here
    try:
        parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
        access_key, date, region, service, _ = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        signature = parts["Signature"]
    except (KeyError, ValueError):
        return "AccessDenied"
    if access_key != user:
        return "InvalidAccessKeyId"
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    path, _, query = raw_uri.partition("?")
    pairs = sorted(tuple(p.partition("=")[::2]) for p in query.split("&") if p) if query else []
    canonical = "\n".join(
        [
            environ["REQUEST_METHOD"].upper(),
            path,
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{h}:{' '.join(_environ_header(environ, h).split())}\n" for h in signed),
            ";".join(signed),
            _environ_header(environ, "x-amz-content-sha256") or "UNSIGNED-PAYLOAD",
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            _environ_header(environ, "x-amz-date"),
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = _sign(("AWS4" + password).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _sign(key, part)
    expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "SignatureDoesNotMatch"


class _AuthMiddleware:
    """WSGI wrapper: MinIO-style credential checks in front of moto."""

    def __init__(self, app: Callable, server: S3Server):
        self.app = app
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.server.auth and not path.startswith("/moto-api"):
            code = check_sigv4(environ, self.server.user, self.server.password)
            if code is not None:
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{_ERRORS[code]}</Message>"
                    f"<Resource>{path}</Resource><RequestId>0</RequestId></Error>"
                ).encode()
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
        return self.app(environ, start_response)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """A moto S3 server on 127.0.0.1; a context manager (or call start()/stop())."""

    def __init__(
        self,
        port: int = 0,
        *,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        auth: bool = True,
        log_requests: bool = False,
    ):
        self.port = port
        self.log_requests = log_requests
        self.user = user
        self.password = password
        self.auth = auth
        self._server: Any = None
        self._client: Any = None
        self._start_error: BaseException | None = None

    # -- addresses -------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port, the form the tutorial's MINIO_ENDPOINT takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "MINIO_ENDPOINT": self.endpoint,
            "MINIO_USER": self.user,
            "MINIO_PASSWORD": self.password,
        }

    # -- lifecycle -------------------------------------------------------

    def start(self) -> S3Server:
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer

        if not self.log_requests:  # werkzeug logs every request to stderr by default
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

        middleware_owner = self

        class _Server(ThreadedMotoServer):
            def _server_entry(self) -> None:  # same as moto's, with the auth wrapper
                from moto.server import (
                    DomainDispatcherApplication,
                    MotoRequestHandler,
                    create_backend_app,
                )
                from werkzeug.serving import make_server

                app = _AuthMiddleware(
                    DomainDispatcherApplication(create_backend_app), middleware_owner
                )
                try:
                    self._server = make_server(
                        self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
                    )
                except BaseException as e:  # e.g. the port is taken: don't leave start() waiting
                    middleware_owner._start_error = e
                    self._server_ready_event.set()
                    return
                self._server_ready_event.set()
                self._server.serve_forever()

        server = _Server(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._start_error = None
        server.start()
        if self._start_error is not None:
            server._thread.join()
            raise self._start_error
        self._server = server
        self.port = server.get_host_and_port()[1]
        self.buckets()  # warm up: moto loads its S3 backend on the first request
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        self._client = None
        if server is None:
            return
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------

    @property
    def client(self) -> Any:
        """A boto3 S3 client for this server, with its credentials."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.url,
                region_name=REGION,
                aws_access_key_id=self.user,
                aws_secret_access_key=self.password,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 1, "mode": "standard"},
                ),
            )
        return self._client

    def buckets(self) -> list[str]:
        return sorted(b["Name"] for b in self.client.list_buckets().get("Buckets", []))

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def put_object(self, bucket: str, key: str, body: bytes = b"") -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it (like `mc rb --force`)."""
        for obj in self.client.list_objects_v2(Bucket=name).get("Contents", []):
            self.client.delete_object(Bucket=name, Key=obj["Key"])
        self.client.delete_bucket(Bucket=name)

    def reset(self) -> None:
        """Forget every bucket (moto's /moto-api/reset)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.s3",
        description="Run a MinIO-like S3 server (moto) on 127.0.0.1.",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: a free one)"
    )
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--no-auth", action="store_true", help="accept any credentials")
    parser.add_argument("--quiet", action="store_true", help="don't log each request")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    server = S3Server(
        args.port,
        user=args.user,
        password=args.password,
        auth=not args.no_auth,
        log_requests=not args.quiet,
    )
    try:
        server.start()
    except OSError as e:
        print(f"s3: cannot listen on 127.0.0.1:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        print(server.endpoint, flush=True)
        print(
            f"S3 server (moto) listening on {server.url}; stop with SIGTERM or Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
