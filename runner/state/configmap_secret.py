"""The ConfigMap and Secret state stores: state in ConfigMaps or Secrets, locked by a Lease.

What is stored in which object and field is the codec's (runner/state/codec/); requests go
through the API client (runner/state/kubeapi.py); this module decides what to read and write,
in which order, and what a concurrent change means. It stays one module, though just past 400
lines: loading, saving and sweeping chunks are one protocol over the same objects (what a load
saw decides what a save may overwrite and which chunks it deletes), best read in one place.

One main object per state, named as the step says. Small text state is stored as plain
`data` (so `kubectl get configmap my-app-state -o jsonpath={.data.tfstate}` shows it, as in
the Kratix tutorial), larger state gzip-compressed, and state beyond one object split into
chunk objects `NAME-GENERATION-I` that the main object lists in a manifest. Chunks are
written first and the manifest last, so a reader sees the old generation or the new. Each save
takes a new random generation and only ever creates chunk objects, never rewrites one, so the
chunks a manifest names are the ones it was written with until they are deleted (a reader that
then misses one reads again).

Memory: a big state passes through here one chunk at a time. A save encodes a chunk, sends it and
drops it before encoding the next (only the manifest is kept); a load fetches a chunk, feeds it
to the decoder and drops it before fetching the next.

Every write carries the resourceVersion this run read: a save never overwrites a state that
another run saved in between, and never deletes and recreates (no window without state). A
state's version is the main object's resourceVersion and the files' digest: a save expecting it
goes on after a change that left the files as they were (an operator's label), and raises
StateChanged after any other.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from runner.base.errors import StoreError
from runner.platform.settings import LEASE_SECONDS
from runner.state import codec
from runner.state.base import (
    UNCHECKED,
    DerivedName,
    Expected,
    HeldLock,
    Loaded,
    NotFound,
    RbacRule,
    StateRef,
    StateStore,
    changed_since_read,
    label_value,
)
from runner.state.kubeapi import Conflict, Kube, NoAnswer
from runner.state.lease import LeaseLock, holder_identity
from runner.state.objectkind import CONFIGMAP, SECRET, ObjectKind

if TYPE_CHECKING:
    from runner.platform.log import Logger

_CHUNK_OF = "runner.kratix.dev/chunk-of"
_SAVE_ID = "runner.kratix.dev/save-id"
_READ_ATTEMPTS = 4  # re-reads when a concurrent save replaced the chunks under us
_WRITE_ATTEMPTS = 5  # updates retried when only metadata changed in between
# Exactly the verbs the stores use: read, create, update with resourceVersion, and delete
# (old chunks of a large state, `onDelete: remove`, `runner state rm`); `list` finds chunks
# left by a save that was killed half way. Leases are never listed.
STORE_VERBS = ("get", "list", "create", "update", "delete")
LEASE_VERBS = ("get", "create", "update", "delete")


class KubeStore(StateStore):
    object_kind: ClassVar[ObjectKind]  # what the objects are: CONFIGMAP or SECRET

    def __init__(self, kube: Kube, identity: str, lease_seconds: int = 60) -> None:
        self.kube = kube
        self.identity = identity
        self.lease_seconds = lease_seconds
        # ref -> what this run last read or wrote: the main object's resourceVersion, the
        # digest of the files, and the chunk manifest (to delete old chunks after a save)
        self._read: dict[StateRef, _Seen] = {}
        self._locks: dict[StateRef, LeaseLock] = {}

    @classmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> KubeStore:
        lease = LEASE_SECONDS.read(environ)
        return cls(Kube.from_environment(environ), holder_identity(environ), lease)

    @classmethod
    def rbac_rules(cls, lock: bool) -> tuple[RbacRule, ...]:
        state = RbacRule("", cls.object_kind.resource, STORE_VERBS)
        lease = RbacRule("coordination.k8s.io", "leases", LEASE_VERBS, for_lock=True)
        return (state, lease) if lock else (state,)

    @classmethod
    def derived_names(cls, name: str) -> tuple[DerivedName, ...]:
        """The chunk objects of a large state: `NAME-GENERATION-INDEX`, at most 22 characters
        more than the state's name. (The Lease has the state's own name; label values made
        from it are shortened with a hash when they have to be: `label_value`.)"""
        longest = chunk_name(name, "f" * 16, codec.MAX_CHUNKS - 1)
        return (DerivedName("chunk objects", "NAME-GENERATION-INDEX", longest),)

    @property
    def resource(self) -> str:
        """The API resource the state objects are: configmaps or secrets."""
        return self.object_kind.resource

    def describe(self, ref: StateRef) -> str:
        return self.where(ref, None, {})

    @classmethod
    def where(cls, ref: StateRef, location: str | None, environ: Mapping[str, str]) -> str:
        return f"{cls.kind} {ref.namespace}/{ref.name}"  # no client: `plan` needs no cluster

    key_problem = staticmethod(codec.key_problem)

    def close(self) -> None:
        self.kube.close()

    # -- reading -----------------------------------------------------------------------------
    def load(self, ref: StateRef) -> Loaded | None:
        files = self._load(ref, keep=True)
        seen = self._read[ref]
        return None if files is None else Loaded(files, _version(seen.version, seen.digest))

    def _load(self, ref: StateRef, keep: bool) -> dict[str, bytes] | None:
        """The stored files (keep=False: only note what was read, for a save); None if none."""
        for _ in range(_READ_ATTEMPTS):
            main = self.kube.get(self.resource, ref.namespace, ref.name)
            if main is None:
                self._read[ref] = _Seen(None, None, None)
                return None
            try:
                files, digest = self._decode(ref, main, keep)
            except codec.UnsupportedFormat as exc:
                raise StoreError(
                    f"state {self.describe(ref)} is in a format this runner can't read: {exc}"
                ) from None
            except codec.CorruptState:
                continue  # a save replaced the chunks between our reads: read again
            self._read[ref] = _Seen(
                main["metadata"]["resourceVersion"], digest, self._manifest_of(main)
            )
            return files
        raise StoreError(f"state {self.describe(ref)} kept changing while being read; try again")

    def _base(self, ref: StateRef, expected: Expected) -> _Seen:
        """What a save writes over: the object version, the files' digest and the manifest."""
        if expected is None:
            return _Seen(None, None, None)  # no state was read: create it
        seen = self._read.get(ref)
        if expected is UNCHECKED:
            if seen is None:
                self._load(ref, keep=False)
                seen = self._read[ref]
            return seen
        version, _, digest = expected.rpartition("/")
        if seen is not None and (seen.version, seen.digest) == (version, digest):
            return seen  # the usual case: what this run last read or wrote
        # Another read since (or another store instance): if only metadata changed, go on.
        self._load(ref, keep=False)
        current = self._read[ref]
        if current.digest != digest:
            raise changed_since_read(self.describe(ref))
        return current

    def _decode(
        self, ref: StateRef, main: dict[str, Any], keep: bool = True
    ) -> tuple[dict[str, bytes] | None, str]:
        """The files of the state whose main object is `main` (None with keep=False) and their
        digest. A chunked state's chunk objects are fetched one at a time as it decodes."""
        annotations = main["metadata"].get("annotations") or {}
        fmt = annotations.get(codec.FORMAT_ANNOTATION, codec.PLAIN)
        data = main.get("data") or {}
        binary = main.get("binaryData") or {}
        manifest = codec.manifest(data, format=fmt)
        chunks = None if manifest is None else self._chunks(ref, manifest)
        try:
            if keep:
                return codec.decode_with_digest(self.object_kind, fmt, data, binary, chunks)
            return None, codec.decode_digest(self.object_kind, fmt, data, binary, chunks)
        except codec.CorruptState:
            raise
        except ValueError as exc:
            raise StoreError(f"state {self.describe(ref)} is not readable: {exc}") from None

    def _chunks(self, ref: StateRef, manifest: dict[str, Any]) -> Iterator[dict[str, str]]:
        """Each chunk object's payload in order, fetched when the decoder asks for it."""
        for index in range(manifest["chunks"]):
            chunk = self.kube.get(self.resource, ref.namespace, _chunk_name(ref, manifest, index))
            if chunk is None:
                raise codec.CorruptState("a chunk is missing")
            value = {**(chunk.get("data") or {}), **(chunk.get("binaryData") or {})}
            del chunk
            yield value
            del value  # before the next is fetched: one chunk in memory at a time

    # -- writing -----------------------------------------------------------------------------
    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        seen = self._base(ref, expected)
        version, base_digest, old_manifest = seen.version, seen.digest, seen.manifest
        new_digest = codec.digest(files)
        try:
            encoding = codec.encode_stream(files, self.object_kind)
        except ValueError as exc:  # a key no ConfigMap/Secret can hold: nothing was written
            raise StoreError(f"cannot save state {self.describe(ref)}: {exc}") from None
        if encoding.format == codec.CHUNKED:
            # Each chunk is sent as soon as it is made, and dropped.
            try:
                for index, chunk in enumerate(encoding.chunks()):
                    self._write_chunk(ref, str(encoding.generation), index, chunk)
            except ValueError as exc:  # past MAX_CHUNKS: the chunks written wait for a sweep
                raise StoreError(f"cannot save state {self.describe(ref)}: {exc}") from None
        payload = encoding.payload()
        manifest = payload.manifest
        body = self._object(ref, payload)
        # Which write is this run's: after a lost answer, the object may carry our own save.
        save_id = f"{self.identity}/{uuid.uuid4().hex[:8]}"
        body["metadata"]["annotations"][_SAVE_ID] = save_id
        written: dict[str, Any] | None = None
        for _ in range(_WRITE_ATTEMPTS):
            try:
                if version is None:
                    written = self.kube.create(self.resource, ref.namespace, body)
                else:
                    body["metadata"]["resourceVersion"] = version
                    written = self.kube.replace(self.resource, ref.namespace, ref.name, body)
                break
            except NoAnswer:
                # No attempt was answered; the write may have landed all the same (its answer
                # lost): read back before calling it failed.
                current = self.kube.get(self.resource, ref.namespace, ref.name)
                if current and _annotations(current).get(_SAVE_ID) == save_id:
                    written = current
                    break
                raise
            except (Conflict, NotFound):
                # Someone wrote in between. Go on only if the state itself is what we read
                # (a label or annotation changed); a newer state is never overwritten.
                current = self.kube.get(self.resource, ref.namespace, ref.name)
                if current and _annotations(current).get(_SAVE_ID) == save_id:
                    written = current  # our own write landed; only its answer was lost
                    break
                try:
                    current_digest = self._decode(ref, current, keep=False)[1] if current else None
                except codec.CorruptState:  # being replaced again as we read it: not ours
                    current_digest = "unreadable"
                if current_digest != base_digest and expected is not UNCHECKED:
                    raise changed_since_read(self.describe(ref)) from None
                version = current["metadata"]["resourceVersion"] if current else None
                current_manifest = self._manifest_of(current)
                if not _same_generation(current_manifest, manifest):
                    # (Ours already, when our earlier write landed unanswered: the chunks
                    # to delete afterwards are still those of the manifest we read.)
                    old_manifest = current_manifest
        else:
            raise StoreError(f"state {self.describe(ref)} kept changing; gave up saving")
        assert written is not None
        written_version = written["metadata"]["resourceVersion"]
        self._read[ref] = _Seen(written_version, new_digest, manifest)
        if old_manifest and not _same_generation(old_manifest, manifest):
            self._delete_chunks(ref, old_manifest)
        if (manifest is not None or old_manifest is not None) and ref in self._locks:
            # Only under the lock: without it another run may be writing chunks right now.
            self._sweep_chunks(ref, manifest)
        return _version(written_version, new_digest)

    def _sweep_chunks(self, ref: StateRef, keep: dict[str, Any] | None) -> None:
        """Delete chunk objects no manifest lists: those of a save killed between writing its
        chunks and its manifest, or before it deleted the generation it replaced. Only saves
        of chunked states pay the one (metadata-only) list request."""
        prefix = f"{ref.name}-{keep['generation']}-" if keep else None
        try:
            listed = self.kube.list_metadata(
                self.resource, ref.namespace, f"{_CHUNK_OF}={label_value(ref.name)}"
            )
        except StoreError:
            return  # e.g. `list` not granted: the orphans wait, nothing else is at stake
        for metadata in listed:
            # Whatever the list returned (a proxy or an old server may ignore labelSelector),
            # only this state's own chunk objects are ever deleted: never its main object,
            # another state's objects or anything else in the namespace.
            if not _is_chunk_of(ref, metadata):
                continue
            name = metadata["name"]
            if prefix is None or not name.startswith(prefix):
                try:
                    self.kube.delete(self.resource, ref.namespace, name)
                except StoreError:
                    pass  # a later save tries again

    def _write_chunk(self, ref: StateRef, generation: str, index: int, chunk: bytes) -> None:
        """Create one chunk object; its JSON is built around the chunk's base64 (no escaping
        needed) and sent as bytes, and the server's echo of it is not parsed."""
        name = _chunk_name(ref, {"generation": generation}, index)
        body = self._base_body(name, ref, {_CHUNK_OF: label_value(ref.name)})
        head = json.dumps(body, separators=(",", ":"))[:-1]
        field = self.object_kind.binary_field
        head += f',"{field}":{{"{codec.CHUNK_KEY}":"'
        try:
            self.kube.create(
                self.resource,
                ref.namespace,
                b"".join((head.encode(), chunk, b'"}}')),
                answer=False,
            )
        except (Conflict, NoAnswer) as exc:
            # Generations are random and chunk objects never rewritten: an object of this name
            # is our own create, retried after its answer was lost (or never answered at all).
            # Make sure of it.
            existing = self.kube.get(self.resource, ref.namespace, name)
            if existing is None and isinstance(exc, NoAnswer):
                raise
            if ((existing or {}).get(field) or {}).get(codec.CHUNK_KEY) != chunk.decode("ascii"):
                raise StoreError(
                    f"{self.describe(ref)}: chunk object {name} already exists with other "
                    "content; not saving"
                ) from None

    def _object(self, ref: StateRef, payload: codec.Payload) -> dict[str, Any]:
        body = self._base_body(ref.name, ref, {})
        body["metadata"]["annotations"] = {codec.FORMAT_ANNOTATION: payload.format}
        if payload.data:
            body["data"] = payload.data
        if payload.binary_data:
            body["binaryData"] = payload.binary_data
        return body

    def _base_body(self, name: str, ref: StateRef, extra_labels: dict[str, str]) -> dict[str, Any]:
        return self.object_kind.skeleton(name, ref.namespace, {**ref.labels(), **extra_labels})

    def _manifest_of(self, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        if not obj:
            return None
        annotations = obj["metadata"].get("annotations") or {}
        if annotations.get(codec.FORMAT_ANNOTATION) != codec.CHUNKED:
            return None
        return codec.manifest(obj.get("data") or {}, format=codec.CHUNKED)

    def _delete_chunks(self, ref: StateRef, manifest: dict[str, Any]) -> None:
        for index in range(int(manifest.get("chunks", 0))):
            try:
                self.kube.delete(self.resource, ref.namespace, _chunk_name(ref, manifest, index))
            except StoreError:
                pass  # an orphan chunk is harmless (labelled, and replaced by name next time)

    # -- removal and locking ---------------------------------------------------------------
    def remove(self, ref: StateRef) -> bool:
        main = self.kube.get(self.resource, ref.namespace, ref.name)
        if main is not None:
            manifest = self._manifest_of(main)
            self.kube.delete(self.resource, ref.namespace, ref.name)
            if manifest:
                self._delete_chunks(ref, manifest)
        lock = self._locks.pop(ref, None)
        if lock is not None:
            lock.release()
        self.kube.delete("leases", ref.namespace, ref.name)
        self._read.pop(ref, None)
        return main is not None

    @contextmanager
    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> Iterator[HeldLock]:
        lease = LeaseLock(
            self.kube,
            ref.namespace,
            ref.name,
            self.identity,
            self.lease_seconds,
            ref.labels(),
            log=log,
            step=ref.step,
        )
        lease.acquire(wait_seconds)
        self._locks[ref] = lease
        try:
            yield lease
        finally:
            if self._locks.pop(ref, None) is not None:
                lease.release()

    def unlock(self, ref: StateRef) -> bool:
        return self.kube.delete("leases", ref.namespace, ref.name)


class ConfigMapStore(KubeStore):
    object_kind = CONFIGMAP
    kind = CONFIGMAP.name


class SecretStore(KubeStore):
    object_kind = SECRET
    kind = SECRET.name


def _version(resource_version: str | None, digest: str | None) -> str:
    return f"{resource_version}/{digest}"


def _same_generation(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return (a or {}).get("generation") == (b or {}).get("generation")


@dataclass(frozen=True)
class _Seen:
    version: str | None
    digest: str | None
    manifest: dict[str, Any] | None


def chunk_name(name: str, generation: str, index: int) -> str:
    """The name of chunk `index` of generation `generation` of the state named `name`."""
    return f"{name}-{generation}-{index}"


def _chunk_name(ref: StateRef, manifest: dict[str, Any], index: int) -> str:
    return chunk_name(ref.name, manifest["generation"], index)


_CHUNK_SUFFIX = re.compile(r"-[0-9a-f]{16}-(0|[1-9][0-9]*)")  # what _chunk_name appends


def _is_chunk_of(ref: StateRef, metadata: dict[str, Any]) -> bool:
    """Whether a listed object is one of `ref`'s chunk objects: in its namespace, labelled as
    its chunk, and named as its chunks are."""
    name = metadata.get("name")
    labels = metadata.get("labels") or {}
    return (
        isinstance(name, str)
        and metadata.get("namespace", ref.namespace) == ref.namespace
        and labels.get(_CHUNK_OF) == label_value(ref.name)
        and name.startswith(f"{ref.name}-")
        and _CHUNK_SUFFIX.fullmatch(name, len(ref.name)) is not None
    )


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}
