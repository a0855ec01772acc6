"""A chunked state as a stream of chunks, both ways, one chunk in memory at a time.

Bigger than one object, a state's archive (runner/state/codec/archive.py) is gzip-compressed
and cut into pieces of `CHUNK_BYTES`; each piece goes base64 into its own chunk object under
`CHUNK_KEY`. Writing, `ChunkWriter` hands out each chunk's base64 as soon as it is full (the
store writes it and drops it). Reading, `ChunkedDecoder` takes one chunk at a time (the store
fetches it, feeds it, drops it), hashes it, and inflates it straight into the files; the
checksum is compared once the last chunk is in, and on a mismatch CorruptState is raised before
any file is handed out. Apart from the single-object formats because it is a stream, with the
manifest (runner/state/codec/chunk_manifest.py) as its checksum.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from typing import Final

from runner.state.codec.archive import ArchiveReader, Inflater, header_member
from runner.state.codec.chunk_manifest import manifest
from runner.state.codec.errors import CorruptState
from runner.state.codec.formats import CHUNKED, unb64

CHUNK_BYTES = 900 * 1024
"""Compressed archive bytes per chunk object (decoded; base64 adds a third on the wire)."""
MAX_CHUNKS = 10_000
"""The most chunk objects a state may take (about 8.6 GiB compressed, more than etcd's whole
default quota): chunk indexes have at most 4 digits, so the longest chunk name is known and a
state name is checked against it before anything runs."""
CHUNK_KEY: Final = "chunk"
"""The only key in a chunk object's ``.binaryData`` (ConfigMap) or ``.data`` (Secret)."""


class ChunkWriter:
    """Cuts a stream of compressed bytes into base64 chunks of CHUNK_BYTES, hashing as it goes."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.count = 0
        self.limit = CHUNK_BYTES
        self._buffer = bytearray()

    def write(self, piece: bytes) -> Iterator[bytes]:
        self.sha256.update(piece)
        self.size += len(piece)
        self._buffer += piece
        while len(self._buffer) >= self.limit:
            yield self._emit(self.limit)

    def _emit(self, length: int) -> bytes:
        if self.count >= MAX_CHUNKS:
            raise ValueError(
                f"the state is too large: more than {MAX_CHUNKS} chunk objects of "
                f"{CHUNK_BYTES // 1024} KiB compressed"
            )
        with memoryview(self._buffer) as view, view[:length] as head:
            encoded = base64.b64encode(head)
        del self._buffer[:length]
        self.count += 1
        return encoded

    def finish(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._emit(len(self._buffer))


def archive_chunks(
    writer: ChunkWriter,
    files: Mapping[str, bytes],
    keys: list[str],
    members: list[list[bytes]],
    rest: Iterator[tuple[int, bytes]],
) -> Iterator[bytes]:
    """The chunks' base64, one by one, of the archive of `files`: its header, then each file's
    gzip member, `members` holding the pieces already made and `rest` those still to come."""
    yield from writer.write(header_member(files, keys))
    for member in members:
        while member:
            yield from writer.write(member.pop(0))
    for _, piece in rest:
        yield from writer.write(piece)
    yield from writer.finish()


class ChunkedDecoder:
    """Reads a chunked state one chunk at a time: `feed` each chunk object's merged
    ``.data``/``.binaryData`` in order, then `finish`.

    Each chunk is base64-decoded, hashed and inflated into the files at once, and dropped.
    What the manifest promises (chunk count, size, sha256, keys) is checked in `finish`, after
    the last chunk and before any file is handed out: a mix of saves raises CorruptState there
    (a size beyond the manifest's, or a chunk too many, as soon as it shows). A chunk that
    does not inflate does not stop the hashing, so a mix is reported as one (read again) rather
    than as the garbled archive it makes. With keep=False no file is kept, only `digest`.
    """

    def __init__(self, data: Mapping[str, str], *, keep: bool = True) -> None:
        doc = manifest(data, format=CHUNKED)
        assert doc is not None  # format=CHUNKED raises rather than return None
        self.manifest = doc
        self._sha = hashlib.sha256()
        self._size = 0
        self._count = 0
        # Deflate expands at most ~1032:1: a header claiming more is not ours.
        self._archive: ArchiveReader | None = ArchiveReader(1032 * doc["size"] + 1024, keep)
        self._inflater: Inflater | None = Inflater(self._archive)
        self._error: CorruptState | None = None
        self._keep = keep
        self.digest = ""

    @property
    def chunks(self) -> int:
        """How many chunks the manifest names."""
        return int(self.manifest["chunks"])

    def feed(self, chunk: Mapping[str, str]) -> None:
        index = self._count
        self._count += 1
        if index >= self.chunks:
            raise self._count_mismatch("more")
        raw = _chunk_bytes(index, chunk)
        self._sha.update(raw)
        self._size += len(raw)
        if self._size > self.manifest["size"]:
            raise self._mismatch()
        if self._inflater is not None:
            try:
                self._inflater.feed(raw)
            except CorruptState as exc:
                # Keep hashing: if the checksum disagrees too, that is the story to tell.
                self._error = exc
                self._inflater = self._archive = None

    def finish(self) -> dict[str, bytes] | None:
        """The files (None with keep=False); sets `digest`. Raises CorruptState."""
        doc = self.manifest
        if self._count != self.chunks:
            raise self._count_mismatch(str(self._count))
        if self._size != doc["size"] or self._sha.hexdigest() != doc["sha256"]:
            raise self._mismatch()
        if self._error is not None:
            raise self._error
        assert self._inflater is not None and self._archive is not None
        self._inflater.finish()
        files = self._archive.finish()
        if self._archive.keys != doc["keys"]:
            raise CorruptState("chunked state: the archive's keys differ from the manifest's")
        self.digest = self._archive.digest()
        return files if self._keep else None

    def _count_mismatch(self, read: str) -> CorruptState:
        doc = self.manifest
        return CorruptState(
            f"chunked state: the manifest (generation {doc['generation']}) names "
            f"{doc['chunks']} chunks but {read} were read"
        )

    def _mismatch(self) -> CorruptState:
        doc, size = self.manifest, self._size
        return CorruptState(
            f"chunked state: the chunks do not match the manifest (generation "
            f"{doc['generation']}: {doc['size']} bytes, sha256 {doc['sha256'][:16]}...; read "
            f"{'more' if size > doc['size'] else size} bytes"
            f"{'' if size != doc['size'] else ', other checksum'}): "
            "a chunk is missing, truncated or from another save"
        )


def _chunk_bytes(index: int, chunk: Mapping[str, str]) -> bytes:
    value = chunk.get(CHUNK_KEY)
    if value is None:
        raise CorruptState(f"chunk {index} has no {CHUNK_KEY!r} key (keys: {sorted(chunk)})")
    return unb64(f"chunk {index}", value)
