"""How a step's state (key -> file bytes) is laid out in ConfigMaps and Secrets.

Pure functions, no I/O: the Kubernetes store names the objects, labels them, writes them with
their resourceVersions and hands what it read back to `decode`.

Three formats, recorded in the object's `FORMAT_ANNOTATION`:

* ``plain``: every value is UTF-8 text and the whole state fits one object. A ConfigMap keeps the
  text as is in ``.data`` (so ``kubectl get configmap X -o jsonpath={.data.tfstate}`` shows the
  Terraform state, as in the Kratix tutorial); a Secret keeps it base64-encoded in ``.data`` (so
  ``... | base64 -d`` works).
* ``gzip``: each value gzip-compressed (one gzip member, mtime 0, level 6), when that fits one
  object. ConfigMap ``.binaryData`` / Secret ``.data``, base64 as the API wants it.
* ``chunked``: bigger still. One archive of all files is gzip-compressed and split into pieces of
  `CHUNK_BYTES`; each piece goes into its own chunk object under the key ``chunk`` (ConfigMap
  ``.binaryData``, Secret ``.data``), and the main object's ``.data`` holds only a JSON
  ``manifest``: chunk count, compressed size, the compressed archive's sha256 and a
  ``generation``: 16 hex digits, random per save, that the chunk objects' names carry. A save
  writes new chunk objects under a new generation and never rewrites one, so a reader of the old
  manifest finds the old chunks or none (and reads again), never a mix unnoticed. (Earlier
  runners took the generation from the sha256's first 16 digits; such manifests still read.)

The archive, once decompressed, is one JSON header line ``{"version": 1, "files": [[key, size],
...]}`` and then the files' bytes back to back, in header order (sorted keys). Compressed, it is
a multi-member gzip stream (one member for the header, one per file), so an operator can rebuild
it with ``cat`` + ``base64 -d`` of each chunk + ``gunzip``.

Memory: states reach 30+ MiB in a 256 MiB pod shared with terraform, so neither direction ever
holds more than one chunk of encoded data. `encode_stream` compresses slices of the input and
hands out each chunk's base64 as soon as it is full (the store writes it and drops it); the
manifest, which needs the size and checksum of everything, comes last, as the store writes it
last. `ChunkedDecoder` takes one chunk at a time (the store fetches it, feeds it, drops it),
hashes it, and inflates it straight into the files; the checksum is compared once the last chunk
is in, and on a mismatch CorruptState is raised before any file is handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from runner.state.base import DIGEST_PREFIX, digest

# (`digest` is the interface's: the streaming decoder computes the same one as it reads.)

MAX_OBJECT_BYTES = 1_000_000
"""Payload budget per object: keys plus decoded values. The API server allows 1 MiB (1048576
bytes) of data values; the rest is margin for keys, the manifest and annotations."""

CHUNK_BYTES = 900 * 1024
"""Compressed archive bytes per chunk object (decoded; base64 adds a third on the wire)."""

FORMAT_ANNOTATION: Final = "runner.kratix.dev/format"
PLAIN: Final = "plain"
GZIP: Final = "gzip"
CHUNKED: Final = "chunked"
FORMATS: Final = (PLAIN, GZIP, CHUNKED)

CONFIGMAP: Final = "configmap"
SECRET: Final = "secret"
KINDS: Final = (CONFIGMAP, SECRET)

MANIFEST_KEY: Final = "manifest"
"""The only key in a chunked main object's ``.data``: the manifest's JSON text (ConfigMap) or
that text base64-encoded (Secret, whose ``.data`` values are all base64)."""
CHUNK_KEY: Final = "chunk"
"""The only key in a chunk object's ``.binaryData`` (ConfigMap) or ``.data`` (Secret)."""

MANIFEST_VERSION: Final = 1
ARCHIVE_VERSION: Final = 1
GZIP_LEVEL: Final = 6

# Keys as Kubernetes allows them in ConfigMap/Secret data (IsConfigMapKey).
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_GENERATION = re.compile(r"[0-9a-f]{16}")
_MAX_KEY_LENGTH = 253
_SLICE = 1 << 20  # input fed to the compressor, and most output taken from zlib, at a time
_INFLATE_SLICE = 64 << 10  # compressed input fed to the decompressor at a time
_MAX_HEADER = 64 << 20  # a header line longer than this is not ours
_MANIFEST_LIMIT = 1_000_000  # thousands of keys, long ones: the main object must still fit


class CorruptState(ValueError):
    """Stored objects don't decode to a state: a chunk missing, truncated or from another save
    (a reader saw a mix of generations: read again), or content that was never ours."""


class UnsupportedFormat(CorruptState):
    """The format annotation names no format this runner knows (a newer runner wrote it?).
    Reading again will not help."""


@dataclass(frozen=True)
class Payload:
    """What goes into one object: the format, and its data as the API wants it for the kind.

    `data` is the object's ``.data`` (ConfigMap: text; Secret: base64 text), `binary_data` the
    ConfigMap's ``.binaryData`` (base64 text; always ``{}`` for Secrets). For ``chunked``,
    `data` is ``{"manifest": json}`` (a Secret: the json base64-encoded, as its ``.data`` must
    be; `manifest()` reads both) and `chunks` lists each chunk object's payload, in order:
    ``{"chunk": base64}``, to be put in ``.binaryData`` of a ConfigMap or ``.data`` of a Secret
    (see `chunk_field`). `encode` fills `chunks`; `Encoding.payload` leaves it empty (the
    chunks were handed out one by one).
    """

    format: str
    data: dict[str, str]
    binary_data: dict[str, str] = field(default_factory=dict)
    chunks: list[dict[str, str]] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The parsed manifest of a chunked payload, else None."""
        return manifest(self.data, format=self.format) if self.format == CHUNKED else None

    @property
    def generation(self) -> str | None:
        """For ``chunked``: the 16 hex digits that name this save's chunk objects."""
        parsed = self.manifest
        return None if parsed is None else str(parsed["generation"])


def chunk_field(kind: str) -> str:
    """Where a chunk's ``{"chunk": ...}`` goes: ``binaryData`` (ConfigMap) or ``data`` (Secret)."""
    _check_kind(kind)
    return "binaryData" if kind == CONFIGMAP else "data"


def valid_key(key: str) -> bool:
    """Whether `key` may name a file in a ConfigMap or Secret."""
    return key_problem(key) is None


def key_problem(key: str) -> str | None:
    """Why `key` can't name a file in a ConfigMap or Secret (the API server's IsConfigMapKey),
    in words that name the rule; None when it can."""
    if not key:
        return "a ConfigMap/Secret key can't be empty"
    if len(key) > _MAX_KEY_LENGTH:
        return f"a ConfigMap/Secret key has at most 253 characters (this one has {len(key)})"
    if key in (".", ".."):
        return 'a ConfigMap/Secret key can\'t be "." or ".."'
    if _KEY.fullmatch(key) is None:
        bad = ", ".join(dict.fromkeys(_show_char(c) for c in key if not _KEY.fullmatch(c)))
        return (
            "a ConfigMap/Secret key has only letters, digits, '-', '_' and '.' "
            f"(this one has {bad})"
        )
    return None


def _show_char(char: str) -> str:
    return "a space" if char == " " else repr(char)


def new_generation() -> str:
    """A fresh generation: 16 random hex digits (64 bits), so no two saves share chunk names."""
    return os.urandom(8).hex()


# ---------------------------------------------------------------------------------------------
# encode


def encode(files: Mapping[str, bytes], kind: str, *, generation: str | None = None) -> Payload:
    """The payload that stores `files` in objects of `kind` ("configmap" or "secret"), all of it
    at once: `encode_stream` made into one `Payload`, chunks included (tests, small states).

    Plain when every value is UTF-8 and keys + values fit `MAX_OBJECT_BYTES`; else gzip when
    keys + compressed values fit; else chunked, under `generation` (default: a new random
    one). Raises ValueError for a bad kind, key or generation.
    """
    encoding = encode_stream(files, kind, generation=generation)
    chunks = [{CHUNK_KEY: chunk.decode("ascii")} for chunk in encoding.chunks()]
    return replace(encoding.payload(), chunks=chunks)


def encode_stream(
    files: Mapping[str, bytes], kind: str, *, generation: str | None = None
) -> Encoding:
    """Start encoding `files` for objects of `kind`: the format is decided at once (plain and
    gzip payloads are made at once, they fit one object); a chunked state's chunks are made
    one at a time as `Encoding.chunks()` is iterated, and its manifest once they all have been.

    Raises ValueError for a bad kind, key or generation.
    """
    _check_kind(kind)
    keys = sorted(files)
    for key in keys:
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"state key {key!r} is not valid: {problem}")
    if generation is None:
        generation = new_generation()
    elif _GENERATION.fullmatch(generation) is None:
        raise ValueError(f"generation {generation!r} is not 16 lowercase hex digits")
    budget = MAX_OBJECT_BYTES
    if sum(len(k) + len(files[k]) for k in keys) <= budget:
        texts = _texts(files, keys)
        if texts is not None:
            if kind == CONFIGMAP:
                return Encoding(Payload(PLAIN, texts))
            return Encoding(Payload(PLAIN, {k: _b64(files[k]) for k in keys}))
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


def _texts(files: Mapping[str, bytes], keys: list[str]) -> dict[str, str] | None:
    texts = {}
    for key in keys:
        try:
            texts[key] = files[key].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return texts


def _encode_compressed(
    files: Mapping[str, bytes], keys: list[str], kind: str, budget: int, generation: str
) -> Encoding:
    """Gzip each file while the total fits; past the budget, carry on as a chunked archive
    with the members already made, so nothing is compressed twice."""
    pieces = _compress_files(files, keys)
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
            _manifest_text(kind, keys, generation, 0, 0, 0, "0" * 64, worst=True)
            encoding = Encoding(None, generation=generation, format=CHUNKED)
            encoding._chunks = _chunked(encoding, files, keys, kind, members, pieces)
            return encoding
    encoded = {k: _b64(b"".join(members[i])) for i, k in enumerate(keys)}
    if kind == CONFIGMAP:
        return Encoding(Payload(GZIP, {}, encoded))
    return Encoding(Payload(GZIP, encoded))


def _compress_files(files: Mapping[str, bytes], keys: list[str]) -> Iterator[tuple[int, bytes]]:
    """(file index, piece) of one gzip member per file, in order, fed a slice at a time."""
    for index, key in enumerate(keys):
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        with memoryview(files[key]) as view:
            for start in range(0, len(view), _SLICE):
                piece = compressor.compress(view[start : start + _SLICE])
                if piece:
                    yield index, piece
        yield index, compressor.flush()


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _chunked(
    encoding: Encoding,
    files: Mapping[str, bytes],
    keys: list[str],
    kind: str,
    members: list[list[bytes]],
    rest: Iterator[tuple[int, bytes]],
) -> Iterator[bytes]:
    """The chunks' base64, one by one; after the last, the manifest goes into `encoding`."""
    writer = _ChunkWriter()
    header = {"version": ARCHIVE_VERSION, "files": [[k, len(files[k])] for k in keys]}
    yield from writer.write(
        _gzip(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")
    )
    for member in members:
        while member:
            yield from writer.write(member.pop(0))
    for _, piece in rest:
        yield from writer.write(piece)
    yield from writer.finish()
    total = sum(len(files[k]) for k in keys)
    generation = str(encoding.generation)
    sha = writer.sha256.hexdigest()
    value = _manifest_text(kind, keys, generation, writer.count, writer.size, total, sha)
    encoding._finish(Payload(CHUNKED, {MANIFEST_KEY: value}))


def _manifest_text(
    kind: str,
    keys: list[str],
    generation: str,
    chunks: int,
    size: int,
    total: int,
    sha: str,
    worst: bool = False,
) -> str:
    """The manifest as it goes into the main object's ``.data``; with worst=True, one with the
    biggest numbers it could hold, to learn up front whether it fits. Raises ValueError."""
    if worst:
        chunks = size = total = 1 << 63
    doc = {
        "version": MANIFEST_VERSION,
        "chunks": chunks,
        "size": size,
        "sha256": sha,
        "keys": keys,
        "generation": generation,
        "files": len(keys),
        "bytes": total,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    if len(text) * 4 // 3 + len(MANIFEST_KEY) > _MANIFEST_LIMIT:
        raise ValueError(f"a state of {len(keys)} files has too many keys for one manifest")
    # A Secret's .data is base64 like everything in it; a ConfigMap shows the manifest as is.
    return text if kind == CONFIGMAP else _b64(text.encode("ascii"))


class _ChunkWriter:
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
        with memoryview(self._buffer) as view, view[:length] as head:
            encoded = base64.b64encode(head)
        del self._buffer[:length]
        self.count += 1
        return encoded

    def finish(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._emit(len(self._buffer))


def _b64(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------------
# decode


def decode(
    kind: str,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None = None,
) -> dict[str, bytes]:
    """The files stored in an object of `kind` with `format` (its annotation), `data` and
    `binary_data` (its ``.data``/``.binaryData``) and, for chunked, each chunk object's
    ``.data``/``.binaryData`` merged, in order. `chunks` is consumed one at a time, so it
    can be a generator that fetches each chunk object when asked.

    A missing format (None or "") reads as plain, so objects made by hand or by the tutorial's
    ``kubectl create configmap --from-file`` load. Raises CorruptState when the objects do not
    make a state: for chunked, when the chunk count, size or checksum disagrees with the
    manifest (a reader saw a mix of saves: read again); UnsupportedFormat for an unknown format.
    """
    files, _ = _decode(kind, format, data, binary_data, chunks, keep=True)
    assert files is not None
    return files


def decode_digest(
    kind: str,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None = None,
) -> str:
    """`digest(decode(...))` without keeping the files: a chunked state is hashed as it
    inflates. Raises as `decode` does."""
    return _decode(kind, format, data, binary_data, chunks, keep=False)[1]


def decode_with_digest(
    kind: str,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None = None,
) -> tuple[dict[str, bytes], str]:
    """`decode(...)` and its `digest`, hashed in the same pass over a chunked state."""
    files, sha = _decode(kind, format, data, binary_data, chunks, keep=True)
    assert files is not None
    return files, sha


def _decode(
    kind: str,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None,
    keep: bool,
) -> tuple[dict[str, bytes] | None, str]:
    _check_kind(kind)
    data = data or {}
    binary_data = binary_data or {}
    fmt = format or PLAIN
    if fmt == PLAIN:
        files = _decode_plain(kind, data, binary_data)
    elif fmt == GZIP:
        files = _decode_gzip(kind, data, binary_data)
    elif fmt == CHUNKED:
        if chunks is None:
            raise CorruptState("chunked state read without its chunk objects")
        decoder = ChunkedDecoder(data, keep=keep)
        for chunk in chunks:
            decoder.feed(chunk)
            del chunk  # before the next is fetched
        return decoder.finish(), decoder.digest
    else:
        raise UnsupportedFormat(
            f"unknown state format {fmt!r} in annotation {FORMAT_ANNOTATION} "
            f"(this runner reads {', '.join(FORMATS)}; was it written by a newer runner?)"
        )
    return (files if keep else None), digest(files)


def _decode_plain(
    kind: str, data: Mapping[str, str], binary_data: Mapping[str, str]
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if kind == SECRET:
        for key, value in data.items():
            files[_file_key(key)] = _unb64(key, value)
        return files
    for key, text in data.items():
        files[_file_key(key)] = text.encode("utf-8")
    # kubectl create configmap --from-file puts non-UTF-8 files here.
    for key, value in binary_data.items():
        if key in files:
            raise CorruptState(f"key {key!r} is in both data and binaryData")
        files[_file_key(key)] = _unb64(key, value)
    return files


def _decode_gzip(
    kind: str, data: Mapping[str, str], binary_data: Mapping[str, str]
) -> dict[str, bytes]:
    source = binary_data if kind == CONFIGMAP else data
    files = {}
    for key, value in source.items():
        files[_file_key(key)] = _gunzip(key, _unb64(key, value))
    return files


def _gunzip(key: str, blob: bytes) -> bytes:
    """One gzip member, all of it and nothing after it."""
    if len(blob) >= 18:
        # Fast path: the trailer's ISIZE sizes the output buffer exactly (one allocation, where
        # a growing buffer peaks at twice the output). zlib checks the member's CRC and length;
        # the trailer check makes sure that member is the whole blob, else the slow path says why.
        size = int.from_bytes(blob[-4:], "little")
        try:
            out = zlib.decompress(blob, 31, max(size, 1))
        except zlib.error:
            out = None
        if out is not None and len(out) == size and blob[-8:-4] == _crc(out):
            return out
    decompressor = zlib.decompressobj(31)
    try:
        out = decompressor.decompress(blob)
    except zlib.error as exc:
        raise CorruptState(f"{key}: gzip data is corrupt: {exc}") from None
    if not decompressor.eof:
        raise CorruptState(f"{key}: gzip data truncated")
    if decompressor.unused_data:
        raise CorruptState(f"{key}: unexpected bytes after the gzip data")
    return out


def _crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "little")


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
        self._archive: _ArchiveReader | None = _ArchiveReader(1032 * doc["size"] + 1024, keep)
        self._inflater: _Inflater | None = _Inflater(self._archive)
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
    return _unb64(f"chunk {index}", value)


def manifest(data: Mapping[str, str] | None, *, format: str | None = None) -> dict[str, Any] | None:
    """The manifest of a chunked main object's ``.data``: a dict with ``version``, ``chunks``,
    ``size``, ``sha256``, ``keys``, ``generation`` (and ``files``, ``bytes``); None when `data`
    is not a chunked main object. Takes a ConfigMap's ``.data`` (JSON text) or a Secret's
    (base64 of it) alike: JSON text starts with ``{``, which base64 never contains.

    Pass the object's format annotation as `format` when known: for another format this returns
    None (a plain state may well have a file called ``manifest``), and for ``chunked`` a
    missing or malformed manifest raises CorruptState instead of returning None.
    """
    strict = format == CHUNKED
    if format not in (None, "", CHUNKED):
        return None
    data = data or {}
    text = data.get(MANIFEST_KEY)
    if text is None or len(data) != 1:
        if strict:
            raise CorruptState(f"chunked state object has no lone {MANIFEST_KEY!r} key")
        return None
    try:
        if not text.lstrip().startswith("{"):
            text = base64.b64decode(text, validate=True).decode("utf-8")
        doc = json.loads(text)
        _check_manifest(doc)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        if strict:
            raise CorruptState(f"chunked state: malformed manifest: {exc}") from None
        return None
    return doc  # type: ignore[no-any-return]


def _check_manifest(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise TypeError("not a JSON object")
    if doc.get("version") != MANIFEST_VERSION:
        raise ValueError(f"version {doc.get('version')!r}, expected {MANIFEST_VERSION}")
    for name in ("chunks", "size"):
        value = doc[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    sha, generation = doc["sha256"], doc["generation"]
    if not isinstance(sha, str) or re.fullmatch(r"[0-9a-f]{64}", sha) is None:
        raise ValueError("sha256 must be 64 hex digits")
    if not isinstance(generation, str) or _GENERATION.fullmatch(generation) is None:
        raise ValueError("generation must be 16 lowercase hex digits")
    keys = doc["keys"]
    if not isinstance(keys, list) or not all(isinstance(k, str) and valid_key(k) for k in keys):
        raise ValueError("keys must be a list of valid keys")
    if keys != sorted(set(keys)):
        raise ValueError("keys must be sorted and unique")


class _Inflater:
    """Inflates a multi-member gzip stream fed a piece at a time into an _ArchiveReader."""

    def __init__(self, reader: _ArchiveReader) -> None:
        self._reader = reader
        self._decompressor = zlib.decompressobj(31)
        self._in_member = False

    def feed(self, piece: bytes) -> None:
        try:
            with memoryview(piece) as view:
                for start in range(0, len(view), _INFLATE_SLICE):
                    self._inflate(view[start : start + _INFLATE_SLICE])
        except zlib.error as exc:
            raise CorruptState(f"chunked state: the archive is corrupt: {exc}") from None

    def _inflate(self, data: bytes | memoryview) -> None:
        # Slices of _INFLATE_SLICE in, at most _SLICE out at a time: a 900 KiB chunk may
        # inflate to hundreds of MiB, and zlib's unconsumed tails stay small.
        while data or self._in_member:
            out = self._decompressor.decompress(data, _SLICE)
            self._in_member = True
            self._reader.feed(out)
            if self._decompressor.eof:
                data = self._decompressor.unused_data
                self._decompressor = zlib.decompressobj(31)
                self._in_member = False
            elif self._decompressor.unconsumed_tail:
                data = self._decompressor.unconsumed_tail
            elif len(out) < _SLICE:
                return  # this piece is used up and nothing is pending: next piece
            else:
                data = b""  # output may be pending inside zlib: drain it

    def finish(self) -> None:
        if self._in_member:
            raise CorruptState("chunked state: the archive is truncated")


class _ArchiveReader:
    """Splits the decompressed archive (header line, then the files back to back) as it
    arrives, without copying output that falls wholly inside one file, and hashes the files
    as `digest` frames them (with keep=False it keeps nothing else)."""

    def __init__(self, max_bytes: int, keep: bool = True) -> None:
        self._max_bytes = max_bytes
        self._keep = keep
        self._header = bytearray()
        self._entries: list[tuple[str, int]] | None = None
        self._index = 0
        self._remaining = 0
        self._current: io.BytesIO | None = None
        self._sha: Any = None  # the digest, hashed as the files go by (entries in key order)
        self.files: dict[str, bytes] = {}

    @property
    def keys(self) -> list[str]:
        return sorted(k for k, _ in self._entries or [])

    def feed(self, out: bytes) -> None:
        view = memoryview(out)
        if self._entries is None:
            newline = out.find(b"\n")
            if newline < 0:
                self._header += out
                if len(self._header) > _MAX_HEADER:
                    raise CorruptState("chunked state: the archive has no header line")
                return
            self._header += view[:newline]
            self._start(bytes(self._header))
            view = view[newline + 1 :]
        assert self._entries is not None
        while view:
            if self._index >= len(self._entries):
                raise CorruptState("chunked state: unexpected bytes after the archive's files")
            take = min(self._remaining, len(view))
            if self._sha is not None:
                self._sha.update(view[:take])
            if not self._keep:
                self._remaining -= take
                if self._remaining == 0:
                    self._close_file(b"")
            elif self._current is None and take == self._remaining:
                # The whole file in this piece: keep `out` itself when it is exactly the file.
                self._close_file(out if take == len(out) else bytes(view[:take]))
            else:
                if self._current is None:
                    # Presized: written in place and handed out by getvalue() without a copy
                    # (CPython), where a growing buffer over-allocates and reallocates.
                    self._current = io.BytesIO(bytes(self._remaining))
                self._current.write(view[:take])
                self._remaining -= take
                if self._remaining == 0:
                    self._close_file(self._current.getvalue())
            view = view[take:]

    def _start(self, line: bytes) -> None:
        try:
            header = json.loads(line)
            if header["version"] != ARCHIVE_VERSION:
                raise ValueError(f"version {header['version']!r}")
            entries = [(str(k), int(n)) for k, n in header["files"]]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptState(f"chunked state: bad archive header: {exc}") from None
        for key, length in entries:
            if not valid_key(key) or length < 0:
                raise CorruptState(f"chunked state: bad archive entry {key!r} ({length} bytes)")
        if len({k for k, _ in entries}) != len(entries):
            raise CorruptState("chunked state: duplicate keys in the archive")
        if sum(n for _, n in entries) > self._max_bytes:
            raise CorruptState("chunked state: the archive header claims more than it can hold")
        if [k for k, _ in entries] == sorted(k for k, _ in entries):
            self._sha = hashlib.sha256(DIGEST_PREFIX)
            self._sha.update(len(entries).to_bytes(8, "big"))
        elif not self._keep:
            self._keep = True  # not in digest order (never written so): digest() at the end
        self._entries = entries
        self._index = 0
        self._begin()

    def _begin(self) -> None:
        """Start the file at _index, closing empty ones at once."""
        assert self._entries is not None
        while self._index < len(self._entries):
            key, self._remaining = self._entries[self._index]
            if self._sha is not None:
                name = key.encode("utf-8")
                self._sha.update(len(name).to_bytes(8, "big"))
                self._sha.update(name)
                self._sha.update(self._remaining.to_bytes(8, "big"))
            if self._remaining:
                return
            if self._keep:
                self.files[key] = b""
            self._index += 1

    def _close_file(self, content: bytes) -> None:
        assert self._entries is not None
        if self._keep:
            self.files[self._entries[self._index][0]] = content
        self._current = None
        self._remaining = 0
        self._index += 1
        self._begin()

    def finish(self) -> dict[str, bytes]:
        if self._entries is None or self._index < len(self._entries):
            raise CorruptState("chunked state: the archive is truncated")
        return self.files

    def digest(self) -> str:
        return self._sha.hexdigest() if self._sha is not None else digest(self.files)


def _unb64(key: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptState(f"{key}: not valid base64: {exc}") from None


def _file_key(key: str) -> str:
    if not valid_key(key):
        raise CorruptState(f"stored key {key!r} is not a valid state key")
    return key


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown object kind {kind!r}: expected {' or '.join(KINDS)}")
