"""The s3 state store: a state in one object of a bucket of any S3 API (MinIO, AWS, Ceph, R2).

Usage: `state.store: s3` with `state.bucket`, or `--state-store s3://BUCKET[/PREFIX]` (which
wins over the step's bucket). No default location: a step names its bucket or the option does.

Layout: the state `NAME` is the object `PREFIX/NAME`, all its files in that one object (a magic
line, a JSON header line naming each key and its size, then the files back to back, compressed
unless they don't compress: see `pack`), written by one PUT, so readers see the old state or the
new. The namespace is not part of the key: give states in different namespaces different names
(e.g. with `${{ kratix.object.namespace }}`). A state's version is the object's ETag: a save sends
`If-Match: ETAG` (or `If-None-Match: *` when it read no state), so a concurrent writer makes it
fail (StateChanged, exit 3, the other's state kept), never a lost update.

Lock: the object `PREFIX/NAME.lock`, created with `If-None-Match: *`, holding the holder and its
expiry; renewed every third of its duration with `If-Match` on its ETag (runner/state/lock.py);
an expired one is taken over with `If-Match` on the ETag read, so two runs can't both win.

Names and keys: names keep the Kubernetes rule (a step can move between stores); file keys the
ConfigMap rule, for the same reason. RBAC: nothing in Kubernetes. Environment read (values
masked like secrets): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
(or AWS_DEFAULT_REGION) and AWS_ENDPOINT_URL (path-style requests then, as MinIO wants). The
client is obstore (bench/s3_clients.py: it imports and starts in 0.02 s, botocore in 0.36 s).
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.base.errors import Interrupted, InvalidError, Problem, StoreError
from runner.platform import interrupts
from runner.platform.masking import session_masker
from runner.platform.settings import KILL_GRACE, LEASE_SECONDS, format_duration
from runner.state import codec
from runner.state.base import (
    UNCHECKED,
    Expected,
    HeldLock,
    Loaded,
    StateRef,
    StateStore,
    changed_since_read,
)
from runner.state.lease import holder_identity
from runner.state.lock import RenewedLock, release_bound

if TYPE_CHECKING:
    from runner.platform.log import Logger

# The environment the store reads, every value masked wherever the runner prints (DESIGN: "masked
# like secrets"): the endpoint and region too, which name where the states are.
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
ENV = (*SECRET_ENV, "AWS_REGION", "AWS_ENDPOINT_URL")
_MASKED = (*ENV, "AWS_DEFAULT_REGION")
_MAGIC = b"kratix-step-runner/s3-state/v1\n"
_FORMAT_VERSION = 1


class S3Store(StateStore):
    kind = "s3"
    location_usage = "//BUCKET[/PREFIX]"
    default_location = None
    needs_bucket = True
    environment = ENV
    namespaced = False  # the key is PREFIX/NAME: give states in two namespaces two names

    def __init__(
        self,
        location: str | None,
        environ: Mapping[str, str],
        lease_seconds: int,
        grace: float = KILL_GRACE.default,
    ) -> None:
        self.bucket, self.prefix = parse_location(location)
        self.environ = environ
        self.identity = holder_identity(environ)
        self.lease_seconds = lease_seconds
        self.grace = grace  # how long requests go on after a signal (RUNNER_KILL_GRACE)
        self._clients: dict[str, Any] = {}
        self._locks: dict[StateRef, S3Lock] = {}

    @classmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> S3Store:
        masker = session_masker()
        for name in _MASKED:
            if environ.get(name):
                masker.add(name, environ[name])
        return cls(location, environ, LEASE_SECONDS.read(environ), KILL_GRACE.read(environ))

    # -- where -------------------------------------------------------------------------------
    def _where(self, ref: StateRef) -> tuple[str, str]:
        """(bucket, key) of a state: --state-store's bucket and prefix, else the step's bucket."""
        bucket = self.bucket or ref.bucket
        if not bucket:
            raise StoreError(
                f"s3 store: no bucket for state {ref.name}: set state.bucket in step "
                f"{ref.step}, or --state-store s3://BUCKET/PREFIX"
            )
        prefix = self.prefix if self.bucket else ""
        return bucket, f"{prefix}/{ref.name}" if prefix else ref.name

    @classmethod
    def bucket_for(cls, ref: StateRef, location: str | None) -> str | None:
        return parse_location(location)[0] or ref.bucket

    def describe(self, ref: StateRef) -> str:
        bucket = self.bucket or ref.bucket or "?"
        key = self._where(ref)[1] if bucket != "?" else ref.name
        return f"s3://{bucket}/{key}"

    key_problem = staticmethod(codec.key_problem)

    def _client(self, bucket: str) -> Any:
        if bucket not in self._clients:
            self._clients[bucket] = _make_client(bucket, self.environ)
        return self._clients[bucket]

    # -- state -------------------------------------------------------------------------------
    def load(self, ref: StateRef) -> Loaded | None:
        bucket, key = self._where(ref)
        client = self._client(bucket)  # (its own errors name the bucket)

        def fetch() -> tuple[str, io.BytesIO]:
            result = _obstore().get(client, key)
            body = io.BytesIO()
            for piece in result:  # streamed: the body arrives a piece at a time
                body.write(piece)
            return result.meta["e_tag"], body

        try:
            etag, body = _call(self.grace, f"GET s3://{bucket}/{key}", fetch)
        except ClientFailure as exc:
            if _is(exc, "NotFoundError"):
                return None
            raise _error(exc, "cannot read state", bucket, key) from None
        try:
            files = unpack(body.getbuffer())
        except ValueError as exc:
            raise StoreError(f"state s3://{bucket}/{key} is not readable: {exc}") from None
        return Loaded(files, str(etag))

    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        bucket, key = self._where(ref)
        for name in files:
            if (problem := self.key_problem(name)) is not None:
                raise StoreError(f"cannot save state s3://{bucket}/{key}: key {name!r}: {problem}")
        mode: Any
        if expected is UNCHECKED:
            mode = "overwrite"
        elif expected is None:
            mode = "create"
        else:
            mode = {"e_tag": expected}
        body = pack(files, ref.labels())
        client = self._client(bucket)
        try:
            put = _call(
                self.grace, f"PUT s3://{bucket}/{key}",
                lambda: _obstore().put(client, key, body, mode=mode, use_multipart=False),
            )  # fmt: skip
        except ClientFailure as exc:
            # A PUT whose answer was lost either failed with the connection (the client does
            # not retry that) or was retried and the retry failed its own condition. Either
            # way, if the object holds exactly what we sent, it landed: the save succeeded.
            landed = self._etag_if_holding(bucket, key, body)
            if landed is not None:
                return landed
            if not _is(exc, "AlreadyExistsError", "PreconditionError", "NotFoundError"):
                raise _error(exc, "cannot save state", bucket, key) from None
            raise changed_since_read(f"s3://{bucket}/{key}") from None
        return str(put["e_tag"])

    def _etag_if_holding(self, bucket: str, key: str, body: bytes) -> str | None:
        """The object's ETag if its content is `body` byte for byte, else None."""

        def fetch() -> tuple[str, bytes]:
            result = _obstore().get(self._client(bucket), key)
            return str(result.meta["e_tag"]), bytes(result.bytes())

        try:
            etag, current = _call(self.grace, f"GET s3://{bucket}/{key}", fetch)
        except ClientFailure:
            return None
        return etag if current == body else None

    def remove(self, ref: StateRef) -> bool:
        bucket, key = self._where(ref)
        existed = self._exists(bucket, key)
        lock = self._locks.pop(ref, None)
        if lock is not None:
            lock.release()
        for path in (key, f"{key}.lock"):
            try:
                self._delete(bucket, path)
            except ClientFailure as exc:
                if not _is(exc, "NotFoundError"):
                    raise _error(exc, "cannot remove", bucket, path) from None
        return existed

    def _exists(self, bucket: str, key: str) -> bool:
        client = self._client(bucket)
        try:
            _call(self.grace, f"HEAD s3://{bucket}/{key}", lambda: _obstore().head(client, key))
            return True
        except ClientFailure as exc:
            if _is(exc, "NotFoundError"):
                return False
            raise _error(exc, "cannot read", bucket, key) from None

    def _delete(self, bucket: str, key: str) -> None:
        client = self._client(bucket)
        _call(self.grace, f"DELETE s3://{bucket}/{key}", lambda: _obstore().delete(client, key))

    # -- lock --------------------------------------------------------------------------------
    @contextmanager
    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> Iterator[HeldLock]:
        bucket, key = self._where(ref)
        held = S3Lock(self._client(bucket), bucket, f"{key}.lock", self, log, ref.step)
        held.acquire(wait_seconds)
        self._locks[ref] = held
        try:
            yield held
        finally:
            if self._locks.pop(ref, None) is not None:
                held.release()

    def unlock(self, ref: StateRef) -> bool:
        bucket, key = self._where(ref)
        existed = self._exists(bucket, f"{key}.lock")
        if existed:
            try:
                self._delete(bucket, f"{key}.lock")
            except ClientFailure as exc:
                raise _error(exc, "cannot remove lock", bucket, f"{key}.lock") from None
        return existed


class S3Lock(RenewedLock):
    """The lock object of one state: `{"holder": ..., "expires": UNIX-SECONDS}`."""

    poll_max = 0.25  # a lock object is cheap to read: poll as often as before

    def __init__(
        self, client: Any, bucket: str, key: str, store: S3Store, log: Logger | None, step: str
    ) -> None:
        super().__init__(f"lock s3://{bucket}/{key}", store.lease_seconds, log, step)
        self.client = client
        self.bucket = bucket
        self.key = key
        self.identity = store.identity
        self.grace = store.grace
        self._etag: str | None = None
        self._mutex = threading.Lock()

    def held(self) -> bool:
        return self._etag is not None

    def _body(self) -> bytes:
        expires = time.time() + self.duration
        return json.dumps({"holder": self.identity, "expires": expires}).encode()

    def _put(self, mode: Any) -> None:
        stamped = time.monotonic()
        body = self._body()
        result = _call(
            self.grace, f"PUT s3://{self.bucket}/{self.key}",
            lambda: _obstore().put(self.client, self.key, body, mode=mode),
        )  # fmt: skip
        self._etag = str(result["e_tag"])
        self.renewed(stamped)

    def _read(self, within: float | None = None) -> tuple[str, float, str] | None:
        """(holder, expires, etag) of the lock object, None when there is none."""

        def fetch() -> tuple[str, bytes]:
            result = _obstore().get(self.client, self.key)
            return str(result.meta["e_tag"]), bytes(result.bytes())

        try:
            etag, body = _call(self.grace, f"GET s3://{self.bucket}/{self.key}", fetch, within)
        except ClientFailure as exc:
            if _is(exc, "NotFoundError"):
                return None
            raise _error(exc, "cannot read lock", self.bucket, self.key) from None
        try:
            doc = json.loads(body)
            return str(doc.get("holder", "another run")), float(doc.get("expires", 0)), etag
        except (ValueError, TypeError, AttributeError):
            return "an unreadable lock", 0.0, etag  # expired by definition: taken over

    def _try_acquire(self) -> tuple[str | None, float | None]:
        """(None, None) when this run holds it now; else (holder, seconds until it expires)."""
        with self._mutex:
            try:
                self._put("create")
                return None, None
            except ClientFailure as exc:
                if not _is(exc, "AlreadyExistsError", "PreconditionError"):
                    raise _error(exc, "cannot create lock", self.bucket, self.key) from None
            current = self._read()
            if current is None:
                return "another run", 0.0  # released between our two requests: try again
            holder, expires, etag = current
            left = expires - time.time()
            if left > 0 and holder != self.identity:
                return holder, left
            try:
                self._put({"e_tag": etag})  # expired: take it over, if still the one we read
                return None, None
            except ClientFailure as exc:
                if _is(exc, "PreconditionError", "NotFoundError", "AlreadyExistsError"):
                    return "another run", None
                raise _error(exc, "cannot take over lock", self.bucket, self.key) from None

    def renew(self) -> None:
        with self._mutex:
            if self._etag is None or self.lost:
                return
            try:
                self._put({"e_tag": self._etag})
            except ClientFailure as exc:
                if not _is(exc, "PreconditionError", "NotFoundError"):
                    # The renewer says what failed: the client's own error.
                    raise exc.cause if isinstance(exc.cause, Exception) else exc from None
                current = self._read()
                if current is None:
                    self.lose("it was released or deleted")
                else:
                    self.lose(f"{current[0]} took it")

    def release(self) -> None:
        self.stop_renewing()
        with self._mutex:
            if self._etag is None or self.lost:
                return
            end = time.monotonic() + release_bound()
            try:
                current = self._read(within=release_bound())
                if current is not None and current[2] == self._etag:
                    _call(
                        self.grace, f"DELETE s3://{self.bucket}/{self.key}",
                        lambda: _obstore().delete(self.client, self.key),
                        max(0.01, end - time.monotonic()),
                    )  # fmt: skip
            except Exception:  # Interrupted, no answer in time, the client: all the same here
                pass  # it expires on its own; never fail a finished run over a release
            self._etag = None


# -- the object's format -----------------------------------------------------------------------
_SAMPLE = 64 << 10  # bytes of each file tried for compressibility


def pack(files: Mapping[str, bytes], labels: Mapping[str, str] | None = None) -> bytes:
    """One object's body: the magic line, a JSON header line (the format version, the state's
    labels, each key and its size, and the payload's compression), then the payload: the files
    back to back, gzip-compressed unless they don't compress (an encrypted state: compressed
    before it was encrypted), which would only cost time."""
    keys = sorted(files)
    compression = "gzip" if _compressible(files[k] for k in keys) else "none"
    header = {
        "version": _FORMAT_VERSION,
        "labels": dict(labels or {}),
        "compression": compression,
        "files": [[k, len(files[k])] for k in keys],
    }
    out = io.BytesIO()
    out.write(_MAGIC)
    out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
    if compression == "none":
        for key in keys:
            out.write(files[key])
        return out.getvalue()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        for key in keys:
            gz.write(files[key])
    return out.getvalue()


def _compressible(values: Iterable[bytes]) -> bool:
    sample = b"".join(v[:_SAMPLE] for v in values)[: 4 * _SAMPLE]
    return not sample or len(zlib.compress(sample, 1)) < 0.9 * len(sample)


def unpack(body: bytes | memoryview) -> dict[str, bytes]:
    """The files of an object `pack` wrote; ValueError when it is not one."""
    return unpack_with_header(body)[0]


def unpack_with_header(body: bytes | memoryview) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of an object `pack` wrote and its header; ValueError when it is not one."""
    view = memoryview(body)
    if bytes(view[: len(_MAGIC)]) != _MAGIC:
        raise ValueError("not a state this runner wrote")
    end = bytes(view[: len(_MAGIC) + (1 << 20)]).find(b"\n", len(_MAGIC))
    if end < 0:
        raise ValueError("its header is cut short")
    try:
        header = json.loads(bytes(view[len(_MAGIC) : end]))
        entries = [(str(k), int(n)) for k, n in header["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"its header is not readable: {exc}") from None
    if header.get("version") != _FORMAT_VERSION:
        raise ValueError(f"format version {header.get('version')} is not one this runner reads")
    payload: bytes | memoryview = view[end + 1 :]
    if header.get("compression") == "gzip":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"its payload is corrupt ({exc})") from None
    elif header.get("compression") != "none":
        raise ValueError(f"compression {header.get('compression')!r} is not one this runner reads")
    files: dict[str, bytes] = {}
    pos = 0
    for key, size in entries:
        files[key] = bytes(payload[pos : pos + size])
        pos += size
    if pos != len(payload):
        raise ValueError("its files are not the sizes its header says")
    return files, header


def parse_location(location: str | None) -> tuple[str | None, str]:
    """`//BUCKET/PREFIX` (what follows `s3:` in `s3://BUCKET/PREFIX`) -> (BUCKET, PREFIX)."""
    if not location:
        return None, ""
    rest = location.removeprefix("//")
    bucket, _, prefix = rest.partition("/")
    return bucket or None, prefix.strip("/")


# -- the client --------------------------------------------------------------------------------
def _obstore() -> Any:
    import obstore

    return obstore


def _make_client(bucket: str, environ: Mapping[str, str]) -> Any:
    from obstore.store import S3Store

    client: Any = S3Store  # its typed config dicts are TypedDicts; ours are built up

    config: dict[str, Any] = {"conditional_put": "etag"}
    for env, name in (
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
    ):
        if environ.get(env):
            config[name] = environ[env]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    endpoint = environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        _check_endpoint(endpoint)
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False
    # A request that hangs ends (and is retried) after 10 s, as the Kubernetes stores' do.
    options: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(seconds=10),
    }
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True
    retry = {"max_retries": 2, "retry_timeout": timedelta(seconds=15)}
    try:
        return client(bucket, config=config, client_options=options, retry_config=retry)
    except Exception as exc:
        raise StoreError(f"s3 store: cannot use bucket {bucket}: {_first_line(exc)}") from None


def _check_endpoint(endpoint: str) -> None:
    """The native client panics on a URL it can't parse: say what is wrong instead (exit 2)."""
    parts = urlsplit(endpoint)
    if endpoint.strip() != endpoint or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidError(
            Problem(
                f'AWS_ENDPOINT_URL "{endpoint}" is not an http:// or https:// URL',
                hint="give the scheme, e.g. AWS_ENDPOINT_URL=http://minio:9000",
            )
        )


class ClientFailure(Exception):
    """What the client raised in `_call` (its errors, and its panics, which pyo3 makes
    BaseExceptions), carried out of it: the store's handlers catch this alone, so Interrupted
    and the runner's own errors pass them by."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _call(grace: float, what: str, send: Any, within: float | None = None) -> Any:
    """One request of the client, on a thread (interrupts.on_thread): a signal ends the wait
    once the grace period after it is over (Interrupted), and `within` seconds end it whatever
    happens (a lock's release, best effort)."""
    limit = None if within is None else time.monotonic() + within

    def check() -> None:
        deadline = limit if limit is not None else interrupts.api_deadline(grace)
        if deadline is None or time.monotonic() < deadline:
            return
        signum = interrupts.received()
        if signum is None:
            raise StoreError(f"{what}: no answer in time")
        stopped = Interrupted(signum)
        stopped.problems = [
            Problem(
                f"{stopped.problems[0].message}: stopped waiting for the S3 endpoint to "
                f"answer {what}",
                hint=f"after a signal, requests get {format_duration(max(grace, 1.0))} "
                "(RUNNER_KILL_GRACE)",
            )
        ]
        stopped.args = (stopped.problems[0].format(),)
        raise stopped

    def guarded() -> Any:
        try:
            return send()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a panic too: a BaseException
            raise ClientFailure(exc) from None

    return interrupts.on_thread(guarded, check, "s3-request")


def _is(failure: ClientFailure, *names: str) -> bool:
    """Whether the client raised one of obstore's errors `names` (a missing object is
    FileNotFoundError). A missing bucket is never "not found": no state must not be read from a
    bucket's absence."""
    exc = failure.cause
    if "NoSuchBucket" in str(exc):
        return False
    if "NotFoundError" in names and isinstance(exc, FileNotFoundError):
        return True
    return type(exc).__name__ in names


_HINTS = {
    "PermissionDeniedError": "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "and the bucket's policy",
    "UnauthenticatedError": "the credentials were refused: check AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY",
}


def _error(failure: ClientFailure, doing: str, bucket: str, key: str) -> StoreError:
    """A StoreError (exit 3) naming the bucket and key; the client's words masked."""
    exc = failure.cause
    name = type(exc).__name__
    text = str(exc)
    if name in _HINTS:
        reason = _HINTS[name]
    elif "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        reason = f"bucket {bucket} does not exist"
    elif "AccessDenied" in text or "InvalidAccessKeyId" in text or "403" in text:
        reason = "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif "SignatureDoesNotMatch" in text:
        reason = "the signature was refused: check AWS_SECRET_ACCESS_KEY"
    elif "connect" in text.lower() or "dns" in text.lower():
        reason = "cannot reach the S3 endpoint (AWS_ENDPOINT_URL)"
    else:
        reason = _first_line(exc)
    return StoreError(session_masker().mask(f"{doing} s3://{bucket}/{key}: {reason}"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
