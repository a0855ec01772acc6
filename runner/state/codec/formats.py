"""The stored formats' names, and the two that fit one object: ``plain`` and ``gzip``.

Apart from the chunked format (runner/state/codec/chunks.py) because these are whole values in
one object, encoded and decoded at once, where chunking is a stream. The gzip members made
here are also what a chunked archive starts from, so nothing is compressed twice.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator, Mapping
from typing import Final

from runner.state.codec.errors import CorruptState
from runner.state.codec.keys import stored_key
from runner.state.objectkind import ObjectKind

FORMAT_ANNOTATION: Final = "runner.kratix.dev/format"
PLAIN: Final = "plain"
GZIP: Final = "gzip"
CHUNKED: Final = "chunked"
FORMATS: Final = (PLAIN, GZIP, CHUNKED)

GZIP_LEVEL: Final = 6
SLICE: Final = 1 << 20  # input fed to the compressor, and most output taken from zlib, at a time


# -- plain -----------------------------------------------------------------------------------
def plain_data(
    files: Mapping[str, bytes], keys: list[str], kind: ObjectKind
) -> dict[str, str] | None:
    """The ``.data`` of a plain object holding `files`: text as is, or base64 for a kind whose
    ``.data`` is base64; None when a value is not UTF-8 text (plain is for text only)."""
    texts = {}
    for key in keys:
        try:
            texts[key] = files[key].decode("utf-8")
        except UnicodeDecodeError:
            return None
    if kind.base64_values:
        return {k: b64(files[k]) for k in keys}
    return texts


def decode_plain(
    kind: ObjectKind, data: Mapping[str, str], binary_data: Mapping[str, str]
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for key, value in data.items():
        files[stored_key(key)] = unb64(key, value) if kind.base64_values else value.encode("utf-8")
    if not kind.separate_binary:
        return files
    # kubectl create configmap --from-file puts non-UTF-8 files here.
    for key, value in binary_data.items():
        if key in files:
            raise CorruptState(f"key {key!r} is in both data and binaryData")
        files[stored_key(key)] = unb64(key, value)
    return files


# -- gzip ------------------------------------------------------------------------------------
def compress_files(files: Mapping[str, bytes], keys: list[str]) -> Iterator[tuple[int, bytes]]:
    """(file index, piece) of one gzip member per file, in order, fed a slice at a time. A
    file that does not compress (an encrypted state, compressed before it was encrypted) is
    stored in its member as it is: deflating it would only cost time."""
    for index, key in enumerate(keys):
        level = GZIP_LEVEL if compressible(files[key]) else 0
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        with memoryview(files[key]) as view:
            for start in range(0, len(view), SLICE):
                piece = compressor.compress(view[start : start + SLICE])
                if piece:
                    yield index, piece
        yield index, compressor.flush()


def compressible(data: bytes, sample: int = 64 << 10) -> bool:
    """Whether level-1 deflate of the first `sample` bytes saves a tenth (1 ms per call)."""
    head = data[:sample]
    return len(head) < 1024 or len(zlib.compress(head, 1)) < 0.9 * len(head)


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member, as `compress_files` makes them."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def decode_gzip(
    kind: ObjectKind, data: Mapping[str, str], binary_data: Mapping[str, str]
) -> dict[str, bytes]:
    source = binary_data if kind.separate_binary else data
    files = {}
    for key, value in source.items():
        files[stored_key(key)] = _gunzip(key, unb64(key, value))
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


# -- base64, as the API wants binary values ------------------------------------------------
def b64(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(key: str, value: str) -> bytes:
    """`value` decoded; CorruptState naming `key` when it is not base64."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptState(f"{key}: not valid base64: {exc}") from None
