"""Encoding a state: which format it takes, and the payload each object gets.

The format is decided here, once: plain when every value is text and all of it fits one object,
else gzip when the compressed values fit, else chunked. Apart from the formats themselves
(formats.py, chunks.py) because the decision spans them: the gzip attempt carries on into a
chunked archive with the members already made, so nothing is compressed twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.state.codec import chunk_manifest
from runner.state.codec.chunk_manifest import MANIFEST_KEY, manifest, manifest_text
from runner.state.codec.chunks import CHUNK_KEY, ChunkWriter, archive_chunks
from runner.state.codec.formats import CHUNKED, GZIP, PLAIN, b64, compress_files, plain_data
from runner.state.codec.keys import key_problem
from runner.state.objectkind import ObjectKind, check_kind

MAX_OBJECT_BYTES = 1_000_000
"""Payload budget per object: keys plus decoded values. The API server allows 1 MiB (1048576
bytes) of data values; the rest is margin for keys, the manifest and annotations."""


@dataclass(frozen=True)
class Payload:
    """What goes into one object: the format, and its data as the API wants it for the kind.

    `data` is the object's ``.data`` (ConfigMap: text; Secret: base64 text), `binary_data` the
    ConfigMap's ``.binaryData`` (base64 text; always ``{}`` for Secrets). For ``chunked``,
    `data` is ``{"manifest": json}`` (a Secret: the json base64-encoded, as its ``.data`` must
    be; `manifest()` reads both) and `chunks` lists each chunk object's payload, in order:
    ``{"chunk": base64}``, to be put in the kind's `binary_field`. `encode` fills `chunks`;
    `Encoding.payload` leaves it empty (the chunks were handed out one by one).
    """

    format: str
    data: dict[str, str]
    binary_data: dict[str, str] = field(default_factory=dict)
    chunks: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def binary(cls, format: str, kind: ObjectKind, values: dict[str, str]) -> Payload:
        """A payload of base64 `values`, in the kind's field for binary values."""
        return cls(format, {}, values) if kind.separate_binary else cls(format, values)

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The parsed manifest of a chunked payload, else None."""
        return manifest(self.data, format=self.format) if self.format == CHUNKED else None

    @property
    def generation(self) -> str | None:
        """For ``chunked``: the 16 hex digits that name this save's chunk objects."""
        parsed = self.manifest
        return None if parsed is None else str(parsed["generation"])


def encode(
    files: Mapping[str, bytes], kind: ObjectKind, *, generation: str | None = None
) -> Payload:
    """The payload that stores `files` in objects of `kind`, all of it at once: `encode_stream`
    made into one `Payload`, chunks included (tests, small states).

    Plain when every value is UTF-8 and keys + values fit `MAX_OBJECT_BYTES`; else gzip when
    keys + compressed values fit; else chunked, under `generation` (default: a new random
    one). Raises ValueError for a bad kind, key or generation.
    """
    encoding = encode_stream(files, kind, generation=generation)
    chunks = [{CHUNK_KEY: chunk.decode("ascii")} for chunk in encoding.chunks()]
    return replace(encoding.payload(), chunks=chunks)


def encode_stream(
    files: Mapping[str, bytes], kind: ObjectKind, *, generation: str | None = None
) -> Encoding:
    """Start encoding `files` for objects of `kind`: the format is decided at once (plain and
    gzip payloads are made at once, they fit one object); a chunked state's chunks are made
    one at a time as `Encoding.chunks()` is iterated, and its manifest once they all have been.

    Raises ValueError for a bad kind, key or generation.
    """
    check_kind(kind)
    keys = sorted(files)
    for key in keys:
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"state key {key!r} is not valid: {problem}")
    if generation is None:
        generation = chunk_manifest.new_generation()
    else:
        chunk_manifest.check_generation(generation)
    budget = MAX_OBJECT_BYTES
    if sum(len(k) + len(files[k]) for k in keys) <= budget:
        data = plain_data(files, keys, kind)
        if data is not None:
            return Encoding(Payload(PLAIN, data))
    return _encode_compressed(files, keys, kind, budget, generation)


class Encoding:
    """A state being encoded (see `encode_stream`).

    `format` is known from the start. For ``chunked``, `generation` names the chunk objects;
    `chunks()` yields each chunk's value for the object's ``chunk`` key, base64 as ASCII bytes
    (ready to go into a JSON body: base64 needs no escaping), making it only when asked; and
    `payload()`, the main object's data with the manifest, is there once every chunk has been
    taken. For plain and gzip, `chunks()` yields nothing and `payload()` is ready at once.
    """

    def __init__(
        self,
        payload: Payload | None,
        chunks: Iterator[bytes] | None = None,
        generation: str | None = None,
        format: str | None = None,
    ) -> None:
        self._payload = payload
        self._chunks = chunks
        self.generation = generation
        self.format: str = format or (payload.format if payload else CHUNKED)

    def chunks(self) -> Iterator[bytes]:
        """Each chunk's base64 in order (chunked only); iterable once."""
        if self._chunks is None:
            return iter(())
        chunks, self._chunks = self._chunks, None
        return chunks

    def payload(self) -> Payload:
        """The main object's payload. Raises RuntimeError for a chunked state whose chunks
        have not all been taken yet (its manifest is made after the last)."""
        if self._payload is None:
            raise RuntimeError("the manifest is made after the last chunk: take every chunk first")
        return self._payload

    def _finish(self, payload: Payload) -> None:
        self._payload = payload


def _encode_compressed(
    files: Mapping[str, bytes], keys: list[str], kind: ObjectKind, budget: int, generation: str
) -> Encoding:
    """Gzip each file while the total fits; past the budget, carry on as a chunked archive
    with the members already made, so nothing is compressed twice."""
    pieces = compress_files(files, keys)
    members: list[list[bytes]] = [[] for _ in keys]
    used = 0
    started = -1
    for index, piece in pieces:
        if index != started:
            started = index
            used += len(keys[index])
        members[index].append(piece)
        used += len(piece)
        if used > budget:
            # Before any chunk is made (and written): the manifest must fit the main object.
            manifest_text(kind, keys, generation, 0, 0, 0, "0" * 64, worst=True)
            encoding = Encoding(None, generation=generation, format=CHUNKED)
            encoding._chunks = _chunked(encoding, files, keys, kind, members, pieces)
            return encoding
    encoded = {k: b64(b"".join(members[i])) for i, k in enumerate(keys)}
    return Encoding(Payload.binary(GZIP, kind, encoded))


def _chunked(
    encoding: Encoding,
    files: Mapping[str, bytes],
    keys: list[str],
    kind: ObjectKind,
    members: list[list[bytes]],
    rest: Iterator[tuple[int, bytes]],
) -> Iterator[bytes]:
    """The chunks' base64, one by one; after the last, the manifest goes into `encoding`."""
    writer = ChunkWriter()
    yield from archive_chunks(writer, files, keys, members, rest)
    total = sum(len(files[k]) for k in keys)
    generation = str(encoding.generation)
    sha = writer.sha256.hexdigest()
    value = manifest_text(kind, keys, generation, writer.count, writer.size, total, sha)
    encoding._finish(Payload(CHUNKED, {MANIFEST_KEY: value}))
