"""A loopback HTTP server that answers like the Kubernetes API server (ConfigMaps, Secrets, Leases).

The real `kubernetes` client talks to it over HTTP/1.1 keep-alive; tests steer it through
FakeKubeAPI (faults, forbidden verbs, seeded objects) and read back what it saw.

`FakeKubeAPI(tls=True)` serves HTTPS instead, with a throwaway CA and a server certificate for
the host (an IP SAN for 127.0.0.1), made at start-up with `cryptography` when it is installed,
else with the `openssl` CLI; `ca_file` is the CA a client verifies with (a pod's ca.crt).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
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
    ssl_context: ssl.SSLContext | None = None  # set: every connection is TLS

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a sandbox's DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (OSError, ValueError)):
            # clients hanging up, or a connection we reset on purpose (whose file is then closed)
            return
        super().handle_error(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, in the connection's own thread, not in the accept loop.
        try:
            request.settimeout(10)
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError:  # ssl.SSLError included: a client that doesn't trust us, or hung up
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            with contextlib.suppress(OSError):
                conn.close()


class KubeHTTPServer6(KubeHTTPServer):
    """The same on an IPv6 address (host "::1")."""

    address_family = socket.AF_INET6


class _TLSSocket(ssl.SSLSocket):
    """An SSLSocket whose recv(n, MSG_PEEK) peeks at the TCP stream, as a plain socket would.

    The handler asks "has the watching client hung up?" with select() and a one-byte peek;
    SSLSocket refuses flags, but EOF on the TCP stream is the same answer under TLS.
    """

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if flags == socket.MSG_PEEK:
            if self.pending():
                return b"x"
            return socket.socket.recv(self, buflen, flags)
        return super().recv(buflen, flags)


class TLSUnavailable(RuntimeError):
    """Neither `cryptography` nor the `openssl` CLI is there to make a certificate."""


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA and a server certificate signed by it, as PEM files in `folder`."""

    folder: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def generate(cls, host: str, folder: Path) -> TLSFiles:
        """Files for a server reached as `host` (also localhost and the in-cluster names)."""
        files = cls(folder, folder / "ca.crt", folder / "tls.crt", folder / "tls.key")
        names = ["localhost", *IN_CLUSTER_NAMES]
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            ip, names = None, [host, *names]
        try:
            import cryptography  # noqa: F401
        except ImportError:
            files._with_openssl(names, ip)
        else:
            files._with_cryptography(names, ip)
        return files

    def _with_cryptography(
        self, names: list[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)
        validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        def usage(**granted: bool) -> x509.KeyUsage:
            return x509.KeyUsage(**{**dict.fromkeys(_KEY_USAGES, False), **granted})

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(name("fake-kubeapi-ca"))
            .issuer_name(name("fake-kubeapi-ca"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        if ip is not None:
            alt.insert(0, x509.IPAddress(ip))
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("fake-kube-apiserver"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def _with_openssl(
        self, names: list[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise TLSUnavailable("TLS needs the `cryptography` package or the `openssl` CLI")
        alt = ",".join(([f"IP:{ip}"] if ip is not None else []) + [f"DNS:{n}" for n in names])
        ca_key, csr = self.folder / "ca.key", self.folder / "tls.csr"
        extensions = self.folder / "tls.ext"
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={alt}\n"
            "authorityKeyIdentifier=keyid\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        commands = [
            [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca_file, "-days", "1",
             "-subj", "/CN=fake-kubeapi-ca",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash"],
            [openssl, "req", "-new", *ec, "-keyout", self.key_file, "-out", csr,
             "-subj", "/CN=fake-kube-apiserver"],
            [openssl, "x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", ca_key,
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "1",
             "-extfile", extensions, "-out", self.cert_file],
        ]  # fmt: skip
        for argv in commands:
            done = subprocess.run(
                [str(a) for a in argv], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise TLSUnavailable(f"openssl {argv[1]} failed: {done.stderr.strip()}")

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.sslsocket_class = _TLSSocket
        return context


_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)

# The names pods use for the API server (the in-cluster config itself dials the service IP).
IN_CLUSTER_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


class FakeKubeAPI:
    """A Kubernetes API server on loopback for ConfigMaps, Secrets and Leases.

    With `tls=True` it serves HTTPS with a certificate from a throwaway CA (`ca_file`, `ca_pem`);
    TLSUnavailable if there's no way to make one here.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False, tls: bool = False
    ) -> None:
        self.tls: TLSFiles | None = None
        if tls:
            folder = Path(tempfile.mkdtemp(prefix="fake-kubeapi-tls-"))
            try:
                self.tls = TLSFiles.generate(host, folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        self.store = Store()
        self.verbose = verbose
        self.requests: list[tuple[str, str, int]] = []
        self.hanging = 0  # requests that hung (fail(hang=True)), answered or not since
        self._requests_lock = threading.Lock()
        self._faults: Faults = make_faults()
        self._rules = Rules()
        # True: list answers every object, as a proxy or an old server ignoring labelSelector.
        self.ignore_label_selector = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        server_class = KubeHTTPServer6 if ":" in host else KubeHTTPServer
        self._server = server_class((host, port), Handler)
        self._server.api = self
        if self.tls is not None:
            self._server.ssl_context = self.tls.server_context()
        self._thread: threading.Thread | None = None
        self.host, self.port = self._server.server_name, self._server.server_port
        scheme = "https" if self.tls is not None else "http"
        netloc = f"[{self.host}]" if ":" in self.host else self.host  # IPv6: in brackets
        self.url = f"{scheme}://{netloc}:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate (PEM) that signed the server's; None without TLS."""
        return self.tls.ca_file if self.tls is not None else None

    @property
    def ca_pem(self) -> str | None:
        return self.tls.ca_file.read_text() if self.tls is not None else None

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
        self._faults.released.set()
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
        if self.tls is not None:
            shutil.rmtree(self.tls.folder, ignore_errors=True)

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
        if self.tls is not None:
            ca = base64.b64encode(self.tls.ca_file.read_bytes()).decode()
            trust = f"certificate-authority-data: {q(ca)}"
        else:
            trust = "insecure-skip-tls-verify: true"
        text = f"""\
apiVersion: v1
kind: Config
clusters:
- name: fake-kubeapi
  cluster:
    server: {q(self.url)}
    {trust}
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
        hang: bool = False,
        resources: Iterable[str] | None = None,
    ) -> None:
        """Injects faults into requests whose verb is in `only` (default all); fail() clears.

        Per request, after `latency` seconds: a share `reset_rate` get a TCP reset and no
        answer; else a share `rate` get `status` (a Status body; 429 also sends Retry-After: 1);
        the rest are served, then a share `lost_response_rate` of those get a reset, not the answer
        (the write happened, the client can't know). `seed` makes the draws reproducible.
        Reset requests are recorded with status 0.

        With `hang`, requests get no answer at all (`hanging` counts them) until the next
        fail() or stop(); then their connections are reset, with nothing done. `resources`
        (plural names: configmaps, leases) limits the faults to requests on those.
        """
        old = self._faults
        self._faults = make_faults(
            rate, status, reset_rate, latency, seed, only, lost_response_rate, hang, resources
        )
        old.released.set()

    # --- objects -------------------------------------------------------------------------------

    def objects(self, resource: str, namespace: str) -> dict[str, dict[str, Any]]:
        return self.store.objects(lookup(resource), namespace)

    def get_object(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects(resource, namespace).get(name)

    def put_object(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Seeds obj as given (no validation, faults or RBAC); fills uid and resourceVersion."""
        return self.store.put_raw(lookup(resource), namespace, obj)
