"""The archive a chunked state is made of, read as it inflates.

Decompressed, it is one JSON header line ``{"version": 1, "files": [[key, size], ...]}`` and
then the files' bytes back to back, in header order (sorted keys). Compressed, it is a
multi-member gzip stream (one member for the header, one per file), so an operator can rebuild
it with ``cat`` + ``base64 -d`` of each chunk + ``gunzip``.

Apart from the chunks (runner/state/codec/chunks.py) because this is the layout inside the
compressed stream, whatever the pieces it was cut into: chunks deal in base64, counts and
checksums; this deals in inflating and framing files without holding more than one piece.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from collections.abc import Mapping
from typing import Any, Final

from runner.state.base import DIGEST_PREFIX, digest
from runner.state.codec.errors import CorruptState
from runner.state.codec.formats import SLICE, gzip_member
from runner.state.codec.keys import valid_key

# (`digest` is the interface's: the reader computes the same one as the files go by.)

ARCHIVE_VERSION: Final = 1
_INFLATE_SLICE = 64 << 10  # compressed input fed to the decompressor at a time
_MAX_HEADER = 64 << 20  # a header line longer than this is not ours


def header_member(files: Mapping[str, bytes], keys: list[str]) -> bytes:
    """The archive's first gzip member: the header line naming `keys` and their sizes."""
    header = {"version": ARCHIVE_VERSION, "files": [[k, len(files[k])] for k in keys]}
    return gzip_member(json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n")


class Inflater:
    """Inflates a multi-member gzip stream fed a piece at a time into an ArchiveReader."""

    def __init__(self, reader: ArchiveReader) -> None:
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
        # Slices of _INFLATE_SLICE in, at most SLICE out at a time: a 900 KiB chunk may
        # inflate to hundreds of MiB, and zlib's unconsumed tails stay small.
        while data or self._in_member:
            out = self._decompressor.decompress(data, SLICE)
            self._in_member = True
            self._reader.feed(out)
            if self._decompressor.eof:
                data = self._decompressor.unused_data
                self._decompressor = zlib.decompressobj(31)
                self._in_member = False
            elif self._decompressor.unconsumed_tail:
                data = self._decompressor.unconsumed_tail
            elif len(out) < SLICE:
                return  # this piece is used up and nothing is pending: next piece
            else:
                data = b""  # output may be pending inside zlib: drain it

    def finish(self) -> None:
        if self._in_member:
            raise CorruptState("chunked state: the archive is truncated")


class ArchiveReader:
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
