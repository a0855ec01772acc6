"""The encrypted blob's two formats: compressed before encryption for a store that compresses
what it keeps (ConfigMap, Secret, s3), the archive as it is for one that keeps files as they
are (local), where compressing only cost time. Both read back with any configured key; a blob
whose format byte was changed fails like any altered byte."""

from __future__ import annotations

import zlib

import pytest

from runner.base.errors import StoreError
from runner.state import open_store, store_class
from runner.state.base import StateRef
from runner.state.encryption import (
    ENTRY,
    MAGIC,
    VERSION,
    VERSION_AS_IS,
    EncryptedStore,
    Keys,
    StateKey,
    compresses,
    seal,
    unseal,
)

KEYS = Keys(StateKey(bytes(range(32)), "test key"))
TEXT = b'{"version": 4, "serial": 1, "resources": []}\n' * 20_000
FILES = {"tfstate": TEXT, "plugin.bin": bytes(range(256)) * 10, "empty": b""}


@pytest.mark.parametrize("compress", [True, False], ids=["compressed", "as-is"])
def test_a_blob_reads_back_byte_for_byte_in_either_format(compress: bool) -> None:
    blob = seal(FILES, KEYS.write, compress)
    assert blob[len(MAGIC)] == (VERSION if compress else VERSION_AS_IS)
    assert TEXT[:40] not in blob
    assert unseal(bytes(blob), KEYS, "here") == FILES
    size = sum(map(len, FILES.values()))
    assert (len(blob) < size // 10) if compress else (len(blob) > size)


def test_a_changed_format_byte_fails_like_any_altered_byte() -> None:
    blob = bytearray(seal(FILES, KEYS.write, compress=False))
    blob[len(MAGIC)] = VERSION
    with pytest.raises(StoreError, match="altered or cut short"):
        unseal(bytes(blob), KEYS, "here")


def test_the_blob_is_what_aesgcm_makes() -> None:
    """Written straight into one buffer, it is still AES-GCM's ciphertext and tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    blob = bytes(seal(FILES, KEYS.write, compress=True))
    header, body = blob[: len(MAGIC) + 21], blob[len(MAGIC) + 21 :]
    nonce = header[-12:]
    plain = AESGCM(KEYS.write.secret).decrypt(nonce, body, header)
    assert zlib.decompress(plain).startswith(b'{"files":')


def test_only_the_local_store_keeps_files_as_they_are() -> None:
    assert {k: compresses(store_class(k)) for k in ("local", "configmap", "secret", "s3")} == {
        "local": False, "configmap": True, "secret": True, "s3": True,
    }  # fmt: skip


def test_an_encrypted_local_state_is_not_compressed_and_reads_back(tmp_path) -> None:
    store = EncryptedStore(open_store("local", str(tmp_path), {}), KEYS)
    ref = StateRef("s", "state", "default")
    store.save(ref, dict(FILES), expected=None)
    loaded = store.load(ref)
    assert loaded is not None and loaded.files == FILES
    raw = open_store("local", str(tmp_path), {}).load(ref)
    assert raw is not None and list(raw.files) == [ENTRY]
    assert raw.files[ENTRY][len(MAGIC)] == VERSION_AS_IS
