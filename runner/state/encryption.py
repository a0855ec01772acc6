"""State encrypted at rest, for every store: a layer between the engine and the store.

`EncryptedStore` wraps any store: a save turns the files into one archive, compresses it,
encrypts it with AES-256-GCM under `state.encryption.key` and hands the store a single entry
`ENTRY` holding the sealed blob; a load opens it with whichever configured key (the key, then
`fallbackKeys`) has the id the blob names. The store's codec, versions, locks and conflict
checks work on the sealed entry as on any state.

The blob: MAGIC (8 bytes), format version (1 byte), key id (8 bytes: the first 8 of the key's
SHA-256), nonce (12 bytes, fresh per save), then the ciphertext with GCM's 16-byte tag. The
header is the AEAD's associated data, so a changed key id or version fails like a changed byte.
Inside: a JSON header line `{"files": [[key, size], ...]}` and the files back to back, zlib-
compressed (format 1) for a store that compresses what it keeps (ConfigMap, Secret, s3: they
can't compress ciphertext, so it is done here, before encrypting), as they are (format 2) for
one that keeps files as they are (local: compressing would only cost time, bench/README.md).

A state no key opens (another key, a truncated or altered blob) and a plaintext state without
`allowPlaintext` raise StoreError (exit 3) from `load`, which the engine calls before any
command: the stored state is never read as "no state" and never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.base.errors import StoreError
from runner.state.base import UNCHECKED, Expected, HeldLock, Loaded, StateRef, StateStore

if TYPE_CHECKING:
    from runner.platform.log import Logger

ENTRY = "runner-encrypted-state"  # the one entry an encrypted state is stored under
MAGIC = b"KSRSTENC"
VERSION = 1  # the archive zlib-compressed
VERSION_AS_IS = 2  # the archive as it is
ZLIB_LEVEL = 6  # as the stores' own gzip: the same size stored, encrypted or not
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER = len(MAGIC) + 1 + 8 + NONCE_BYTES
_TAG = 16


@dataclass(frozen=True)
class StateKey:
    """One key: its bytes, its id (stored beside the ciphertext) and where it was read."""

    secret: bytes
    source: str  # "environment variable X" / "file /p", for messages

    @property
    def id(self) -> bytes:
        return key_id(self.secret)


def key_id(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()[:8]


@dataclass(frozen=True)
class Keys:
    """A step's keys: `write` seals every save; `read` are tried, by id, to open one."""

    write: StateKey
    fallbacks: tuple[StateKey, ...] = ()
    allow_plaintext: bool = False

    @property
    def read(self) -> tuple[StateKey, ...]:
        return (self.write, *self.fallbacks)


# -- sealing -----------------------------------------------------------------------------------
def seal(files: Mapping[str, bytes], key: StateKey, compress: bool = True) -> bytes:
    """The files as one encrypted blob (compressed first, when `compress`)."""
    keys = sorted(files)
    head = json.dumps({"files": [[k, len(files[k])] for k in keys]}, separators=(",", ":"))
    parts: list[bytes]
    if compress:
        packer = zlib.compressobj(ZLIB_LEVEL)
        parts = [packer.compress(head.encode() + b"\n")]
        parts += [packer.compress(files[k]) for k in keys]
        parts.append(packer.flush())
    else:
        parts = [head.encode() + b"\n", *(files[k] for k in keys)]
    nonce = os.urandom(NONCE_BYTES)
    header = MAGIC + bytes([VERSION if compress else VERSION_AS_IS]) + key.id + nonce
    return _encrypt(parts, key.secret, nonce, header)


def _encrypt(parts: list[bytes], secret: bytes, nonce: bytes, header: bytes) -> bytes:
    """header + AES-GCM(parts joined) + tag, as AESGCM.encrypt makes it, written straight into
    the one buffer: a state's bytes are held twice at most (the files, the blob), not four
    times (joined, encrypted, with the header)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    encryptor = Cipher(algorithms.AES(secret), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(header)
    out = bytearray(len(header) + sum(len(p) for p in parts) + _TAG)
    out[: len(header)] = header
    pos = len(header)
    with memoryview(out) as view:
        for part in parts:
            # update_into wants room for a block more than it writes: the tag's place has it.
            pos += encryptor.update_into(part, view[pos:])
        encryptor.finalize()
        view[pos:] = encryptor.tag
    return out  # type: ignore[return-value]  # bytes-like, and not copied once more


def compresses(store: StateStore) -> bool:
    """Whether `store` compresses what it keeps (then the layer compresses before encrypting);
    a store says it does not with a class attribute `compresses = False`."""
    return bool(getattr(store, "compresses", True))


def is_sealed(files: Mapping[str, bytes]) -> bool:
    return set(files) == {ENTRY} and files[ENTRY].startswith(MAGIC)


def unseal(blob: bytes, keys: Keys, where: str) -> dict[str, bytes]:
    """The files of a sealed blob; StoreError when no key opens it or it was altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < _HEADER + _TAG:
        raise StoreError(f"state {where} is encrypted but cut short ({len(blob)} bytes)")
    header = bytes(blob[:_HEADER])
    version, kid = header[len(MAGIC)], header[len(MAGIC) + 1 : len(MAGIC) + 9]
    nonce = header[len(MAGIC) + 9 :]
    if version not in (VERSION, VERSION_AS_IS):
        raise StoreError(f"state {where} is encrypted in format {version}, unknown to this runner")
    key = next((k for k in keys.read if k.id == kid), None)
    if key is None:
        known = ", ".join(f"{k.id.hex()} ({k.source})" for k in keys.read)
        raise StoreError(
            f"state {where} is encrypted with key id {kid.hex()}, which no configured key has "
            f"(known: {known}); add that key to fallbackKeys. The state is left as it is"
        )
    # Into one buffer, from a view of the blob: the state's bytes are not copied on the way.
    plain = bytearray(len(blob) - _HEADER - _TAG)
    try:
        with memoryview(blob) as view:
            AESGCM(key.secret).decrypt_into(nonce, view[_HEADER:], header, plain)
    except InvalidTag:
        raise StoreError(
            f"state {where} does not decrypt with key {kid.hex()} ({key.source}): it was "
            "altered or cut short. The state is left as it is"
        ) from None
    if version == VERSION:
        try:
            plain = bytearray(zlib.decompress(plain))
        except zlib.error:
            raise StoreError(f"state {where}: its decrypted archive is not readable") from None
    return _unpack(plain, where)


def _unpack(raw: bytearray, where: str) -> dict[str, bytes]:
    """The files of a decrypted archive. The last file is `raw` itself, cut to it: a state of
    one big file is never copied again."""
    end = raw.find(b"\n")
    try:
        entries = [(str(k), int(n)) for k, n in json.loads(raw[:end])["files"]]
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"state {where}: its decrypted archive is not readable") from None
    if end + 1 + sum(n for _, n in entries) != len(raw):
        raise StoreError(f"state {where}: its decrypted archive is not the size it says")
    files: dict[str, bytes] = {}
    pos = end + 1
    for name, size in entries[:-1]:
        files[name] = bytes(raw[pos : pos + size])
        pos += size
    if entries:
        del raw[:pos]
        files[entries[-1][0]] = raw  # type: ignore[assignment]  # bytes-like: not copied
    return files


# -- the layer ---------------------------------------------------------------------------------
class EncryptedStore(StateStore):
    """`inner` with every state sealed on save and opened on load; all else passes through."""

    def __init__(self, inner: StateStore, keys: Keys) -> None:
        self.inner = inner
        self.keys = keys
        self.kind = inner.kind

    @classmethod
    def open(cls, location: str | None, environ: Mapping[str, str]) -> StateStore:
        raise TypeError("wrap an open store: EncryptedStore(store, keys)")

    def describe(self, ref: StateRef) -> str:
        return self.inner.describe(ref)

    def key_problem(self, key: str) -> str | None:  # type: ignore[override]
        return self.inner.key_problem(key)

    def suggested_key(self, key: str) -> str:  # type: ignore[override]
        return self.inner.suggested_key(key)

    def load(self, ref: StateRef) -> Loaded | None:
        loaded = self.inner.load(ref)
        if loaded is None:
            return None
        where = self.inner.describe(ref)
        if is_sealed(loaded.files):
            blob = loaded.files[ENTRY]
            old_key = blob[len(MAGIC) + 1 : len(MAGIC) + 9] != self.keys.write.id
            return Loaded(unseal(blob, self.keys, where), loaded.version, stale=old_key)
        if ENTRY in loaded.files or not self.keys.allow_plaintext:
            raise StoreError(
                f"state {where} is not encrypted (or not by this runner), and the step sets "
                "state.encryption: not reading it. To migrate a plaintext state, set "
                "allowPlaintext: true for one run. The state is left as it is"
            )
        # Plaintext, read once to migrate: saved encrypted by this run, changed or not.
        return Loaded(loaded.files, loaded.version, stale=True)

    def save(self, ref: StateRef, files: dict[str, bytes], expected: Expected = UNCHECKED) -> str:
        for key in files:
            if (problem := self.inner.key_problem(key)) is not None:
                where = self.inner.describe(ref)
                raise StoreError(f"cannot save state {where}: key {key!r}: {problem}")
        sealed = seal(files, self.keys.write, compresses(self.inner))
        return self.inner.save(ref, {ENTRY: sealed}, expected)

    def remove(self, ref: StateRef) -> bool:
        return self.inner.remove(ref)

    def lock(
        self, ref: StateRef, wait_seconds: float, log: Logger | None = None
    ) -> AbstractContextManager[HeldLock]:
        return self.inner.lock(ref, wait_seconds, log)

    def unlock(self, ref: StateRef) -> bool:
        return self.inner.unlock(ref)

    def close(self) -> None:
        self.inner.close()
