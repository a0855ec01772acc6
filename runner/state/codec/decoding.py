"""Decoding a state: the files stored in a main object (and its chunk objects, if chunked).

One entry for every format, read from the object's format annotation; apart from encoding.py
because reading has rules of its own (an object without the annotation, made by hand or by
``kubectl create configmap --from-file``, reads as plain) and variants (the digest alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from runner.state.base import digest
from runner.state.codec.chunks import ChunkedDecoder
from runner.state.codec.errors import CorruptState, UnsupportedFormat
from runner.state.codec.formats import (
    CHUNKED,
    FORMAT_ANNOTATION,
    FORMATS,
    GZIP,
    PLAIN,
    decode_gzip,
    decode_plain,
)
from runner.state.objectkind import ObjectKind, check_kind


def decode(
    kind: ObjectKind,
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
    kind: ObjectKind,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None = None,
) -> str:
    """`digest(decode(...))` without keeping the files: a chunked state is hashed as it
    inflates. Raises as `decode` does."""
    return _decode(kind, format, data, binary_data, chunks, keep=False)[1]


def decode_with_digest(
    kind: ObjectKind,
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
    kind: ObjectKind,
    format: str | None,
    data: Mapping[str, str] | None,
    binary_data: Mapping[str, str] | None,
    chunks: Iterable[Mapping[str, str]] | None,
    keep: bool,
) -> tuple[dict[str, bytes] | None, str]:
    check_kind(kind)
    data = data or {}
    binary_data = binary_data or {}
    fmt = format or PLAIN
    if fmt == PLAIN:
        files = decode_plain(kind, data, binary_data)
    elif fmt == GZIP:
        files = decode_gzip(kind, data, binary_data)
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
