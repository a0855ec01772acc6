"""The encoding of a step's state into ConfigMap/Secret payloads, and back."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import re
import string
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from runner.state import codec
from runner.state.codec import (
    CHUNK_BYTES,
    MAX_OBJECT_BYTES,
    CorruptState,
    Payload,
    UnsupportedFormat,
    decode,
    digest,
    encode,
    manifest,
)
from runner.state.codec import chunks as codec_chunks
from runner.state.codec import encoding as codec_encoding
from runner.state.codec import formats as codec_formats
from runner.state.codec.formats import compressible
from runner.state.objectkind import CONFIGMAP, KINDS, SECRET, ObjectKind

API_LIMIT = 1024 * 1024  # what the API server allows per object (data values, decoded)

# --------------------------------------------------------------------------------------------
# helpers


def roundtrip(files: dict[str, bytes], kind: ObjectKind) -> tuple[Payload, dict[str, bytes]]:
    payload = encode(files, kind)
    return payload, read_back(payload, kind)


def read_back(
    payload: Payload, kind: ObjectKind, chunks: list[dict[str, str]] | None = None
) -> dict[str, bytes]:
    return decode(
        kind,
        payload.format,
        payload.data,
        payload.binary_data,
        payload.chunks if chunks is None else chunks,
    )


def gz(value: bytes) -> bytes:
    """A value's gzip member as the codec makes it: stored as is when it does not compress."""
    compressor = zlib.compressobj(6 if compressible(value) else 0, zlib.DEFLATED, 31)
    return compressor.compress(value) + compressor.flush()


def payload_bytes(data: dict[str, str], binary_data: dict[str, str], kind: ObjectKind) -> int:
    """Keys plus decoded values: the budget MAX_OBJECT_BYTES is measured in."""
    size = sum(len(k) + len(base64.b64decode(v)) for k, v in binary_data.items())
    if kind is SECRET:
        return size + sum(len(k) + len(base64.b64decode(v)) for k, v in data.items())
    return size + sum(len(k) + len(v.encode()) for k, v in data.items())


def assert_fits(payload: Payload, kind: ObjectKind) -> None:
    """Every object the store would write is within the budget (and so the API's limit)."""
    assert payload_bytes(payload.data, payload.binary_data, kind) <= MAX_OBJECT_BYTES
    for chunk in payload.chunks:
        assert set(chunk) == {"chunk"}
        assert len(base64.b64decode(chunk["chunk"])) <= CHUNK_BYTES
        assert payload_bytes({}, chunk, CONFIGMAP) <= MAX_OBJECT_BYTES < API_LIMIT


def expected_format(files: dict[str, bytes], limit: int) -> str:
    """The rule, restated independently of the implementation."""
    try:
        for value in files.values():
            value.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    if text and sum(len(k) + len(v) for k, v in files.items()) <= limit:
        return "plain"
    if sum(len(k) + len(gz(v)) for k, v in files.items()) <= limit:
        return "gzip"
    return "chunked"


@contextmanager
def limits(max_object: int, chunk: int) -> Iterator[None]:
    """Small thresholds, so every format shows up with small states."""
    with (
        mock.patch.object(codec_encoding, "MAX_OBJECT_BYTES", max_object),
        mock.patch.object(codec_chunks, "CHUNK_BYTES", chunk),
    ):
        yield


_POOL_RANDOM = random.Random(7)


def _resource(rnd: random.Random, index: int) -> str:
    kind = rnd.choice(["aws_s3_bucket", "aws_iam_role", "minio_s3_bucket", "aws_instance"])
    name = f"{kind.rsplit('_', 1)[-1]}_{index}"
    team = f"team-{rnd.randrange(40)}"
    attributes = {
        "id": f"{rnd.getrandbits(128):032x}",
        "arn": f"arn:aws:{kind.split('_')[1]}:eu-west-1:{rnd.randrange(10**11, 10**12)}:{name}",
        "bucket": f"{name}.{team}",
        "created": f"2024-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}T"
        f"{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z",
        "force_destroy": rnd.random() < 0.5,
        "region": rnd.choice(["eu-west-1", "us-east-1"]),
        "tags": {"app.kubernetes.io/name": name, "team": team},
        "size": rnd.randrange(1 << 40),
        "secret": base64.b64encode(rnd.randbytes(rnd.randrange(24, 96))).decode(),
        "policy": json.dumps({"Statement": [{"Effect": "Allow", "Resource": f"{name}/*"}]}),
    }
    resource = {
        "mode": "managed",
        "type": kind,
        "name": name,
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [{"schema_version": 0, "attributes": attributes, "dependencies": []}],
    }
    return json.dumps(resource, indent=2).replace("\n", "\n    ")


# A pool of resources far bigger than deflate's 32 KiB window: picking from it at random
# compresses about like a real state (~5x) and builds 30 MiB in a fraction of a second.
_POOL = [_resource(_POOL_RANDOM, i) for i in range(600)]


def tfstate_like(size: int, seed: int = 0) -> bytes:
    """Terraform-state-like JSON text of exactly `size` bytes (the tail is cut/padded)."""
    rnd = random.Random(seed)
    head = f'{{\n  "version": 4,\n  "terraform_version": "1.7.5",\n  "serial": {seed},\n'
    head += f'  "lineage": "{rnd.getrandbits(128):032x}",\n  "outputs": {{}},\n  "resources": [\n'
    parts, total = [head], len(head)
    while total < size:
        part = "    " + rnd.choice(_POOL) + ",\n"
        parts.append(part)
        total += len(part)
    text = "".join(parts)[: max(size - 6, 0)] + "\n  ]\n}"
    return text[:size].ljust(size).encode()


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def json_30m() -> bytes:
    return tfstate_like(30 << 20, seed=30)


@pytest.fixture(scope="module")
def random_30m() -> bytes:
    return random_bytes(30 << 20, seed=30)


# --------------------------------------------------------------------------------------------
# the format chosen, and what each looks like


@pytest.mark.parametrize("kind", KINDS)
def test_small_text_is_plain(kind: ObjectKind) -> None:
    state = '{"version": 4, "resources": []}\n'
    payload = encode({"tfstate": state.encode()}, kind)
    assert payload.format == "plain"
    assert payload.binary_data == {}
    assert payload.chunks == []
    if kind is CONFIGMAP:
        # `kubectl get configmap X -o jsonpath={.data.tfstate}` shows the state as is.
        assert payload.data == {"tfstate": state}
    else:
        # `... -o jsonpath={.data.tfstate} | base64 -d` shows it.
        assert payload.data == {"tfstate": base64.b64encode(state.encode()).decode()}
    assert read_back(payload, kind) == {"tfstate": state.encode()}


@pytest.mark.parametrize("kind", KINDS)
def test_plain_up_to_the_budget_exactly(kind: ObjectKind) -> None:
    key = "tfstate"
    value = tfstate_like(MAX_OBJECT_BYTES - len(key))
    payload, back = roundtrip({key: value}, kind)
    assert payload.format == "plain"
    assert back == {key: value}
    assert_fits(payload, kind)
    if kind is CONFIGMAP:
        assert payload.data[key] == value.decode()


@pytest.mark.parametrize("kind", KINDS)
def test_one_byte_over_the_budget_is_gzip(kind: ObjectKind) -> None:
    key = "tfstate"
    value = tfstate_like(MAX_OBJECT_BYTES - len(key) + 1)
    payload, back = roundtrip({key: value}, kind)
    assert payload.format == "gzip"
    assert back == {key: value}
    assert_fits(payload, kind)
    field = payload.binary_data if kind is CONFIGMAP else payload.data
    assert set(field) == {key}
    assert base64.b64decode(field[key]) == gz(value)
    assert gzip.decompress(base64.b64decode(field[key])) == value
    if kind is CONFIGMAP:
        assert payload.data == {}
    else:
        assert payload.binary_data == {}


@pytest.mark.parametrize("kind", KINDS)
def test_keys_count_towards_the_budget(kind: ObjectKind) -> None:
    files = {"a" * 100: b"x" * 400_000, "b" * 100: b"y" * (MAX_OBJECT_BYTES - 400_200)}
    assert encode(files, kind).format == "plain"
    files["c"] = b""
    assert encode(files, kind).format == "gzip"
    assert read_back(encode(files, kind), kind) == files


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe", b"\x80", "caf\u00e9".encode("latin-1"), b"\xed\xa0\x80", bytes(range(256))],
    ids=["bom-like", "continuation", "latin1", "surrogate", "all-bytes"],
)
def test_binary_never_goes_plain(kind: ObjectKind, value: bytes) -> None:
    files = {"terraform.tfstate.backup": value, "text": b"hello"}
    payload, back = roundtrip(files, kind)
    assert payload.format == "gzip"
    assert back == files


@pytest.mark.parametrize("kind", KINDS)
def test_utf8_text_with_any_characters_is_plain(kind: ObjectKind) -> None:
    text = "na\u00efve \u2603 \U0001f600 \x00 \r\n\ttabs \ufeff"
    payload, back = roundtrip({"t": text.encode()}, kind)
    assert payload.format == "plain"
    assert back == {"t": text.encode()}
    if kind is CONFIGMAP:
        assert payload.data == {"t": text}


def _gzip_boundary(key: str) -> tuple[bytes, bytes]:
    """Two random values: one whose gzip fills the budget exactly, one a byte bigger."""
    data = random_bytes(MAX_OBJECT_BYTES, seed=3)

    def size(n: int) -> int:
        return len(key) + len(gz(data[:n]))

    low, high = MAX_OBJECT_BYTES - 2000, MAX_OBJECT_BYTES
    assert size(low) <= MAX_OBJECT_BYTES < size(high)
    while high - low > 1:
        middle = (low + high) // 2
        if size(middle) <= MAX_OBJECT_BYTES:
            low = middle
        else:
            high = middle
    return data[:low], data[:high]


@pytest.mark.parametrize("kind", KINDS)
def test_gzip_up_to_the_budget_then_chunked(kind: ObjectKind) -> None:
    key = "state.bin"
    fits, over = _gzip_boundary(key)
    payload, back = roundtrip({key: fits}, kind)
    assert payload.format == "gzip"
    assert payload_bytes(payload.data, payload.binary_data, kind) == MAX_OBJECT_BYTES
    assert back == {key: fits}

    payload, back = roundtrip({key: over}, kind)
    assert payload.format == "chunked"
    assert back == {key: over}
    assert len(payload.chunks) == 2
    assert_fits(payload, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_layout(kind: ObjectKind) -> None:
    files = {
        "tfstate": tfstate_like(3 << 20, seed=1),
        "backup.bin": random_bytes(2 << 20, seed=2),
        "empty": b"",
    }
    payload, back = roundtrip(files, kind)
    assert back == files
    assert payload.format == "chunked"
    assert payload.binary_data == {}
    assert set(payload.data) == {"manifest"}
    assert_fits(payload, kind)
    pieces = [base64.b64decode(chunk["chunk"]) for chunk in payload.chunks]
    compressed = b"".join(pieces)
    assert all(len(piece) == CHUNK_BYTES for piece in pieces[:-1])
    assert 0 < len(pieces[-1]) <= CHUNK_BYTES <= MAX_OBJECT_BYTES

    text = payload.data["manifest"]
    if kind is SECRET:  # everything in a Secret's .data is base64
        text = base64.b64decode(text).decode()
    doc = json.loads(text)
    assert doc == manifest(payload.data) == manifest(payload.data, format="chunked")
    assert payload.manifest == doc
    sha = hashlib.sha256(compressed).hexdigest()
    assert doc["version"] == 1
    assert doc["chunks"] == len(payload.chunks)
    assert doc["size"] == len(compressed)
    assert doc["sha256"] == sha
    assert re.fullmatch(r"[0-9a-f]{16}", doc["generation"])
    assert doc["generation"] == payload.generation
    assert doc["keys"] == ["backup.bin", "empty", "tfstate"]
    assert doc["files"] == 3
    assert doc["bytes"] == sum(map(len, files.values()))

    # Self-describing: gunzip of the chunks is a JSON header line, then the files in order.
    archive = gzip.decompress(compressed)
    header, _, body = archive.partition(b"\n")
    entries = json.loads(header)["files"]
    assert entries == [[k, len(files[k])] for k in sorted(files)]
    assert body == b"".join(files[k] for k in sorted(files))


def test_chunks_are_the_same_for_both_kinds_and_the_manifest_base64_in_secrets() -> None:
    files = {"tfstate": random_bytes(1_200_000)}
    generation = "0123456789abcdef"
    configmap = encode(files, CONFIGMAP, generation=generation)
    secret = encode(files, SECRET, generation=generation)
    assert configmap.chunks == secret.chunks
    assert len(configmap.chunks) == 2
    assert configmap.data["manifest"].startswith("{")
    assert base64.b64decode(secret.data["manifest"]).decode() == configmap.data["manifest"]
    assert configmap.manifest == secret.manifest == manifest(secret.data, format="chunked")
    assert CONFIGMAP.binary_field == "binaryData"
    assert SECRET.binary_field == "data"


@pytest.mark.parametrize("kind", KINDS)
def test_encoding_is_deterministic_but_for_the_generation(kind: ObjectKind) -> None:
    for files in (
        {"a": b"\xff" * 10},
        {"tfstate": tfstate_like(1_500_000)},
        {"tfstate": random_bytes(1_500_000)},
    ):
        first = encode(files, kind, generation="00000000000000ab")
        second = encode(dict(reversed(files.items())), kind, generation="00000000000000ab")
        assert first == second
    # Each save of a chunked state takes a new generation (so new chunk object names), even
    # for the same content: a chunk object is never rewritten.
    files = {"tfstate": random_bytes(1_500_000)}
    first, second = encode(files, kind), encode(files, kind)
    assert first.chunks == second.chunks
    assert first.generation != second.generation
    assert re.fullmatch(r"[0-9a-f]{16}", first.generation or "")
    with pytest.raises(ValueError, match="generation"):
        encode(files, kind, generation="not-hex-digits!!")
    blob = base64.b64decode(encode({"a": b"\xff"}, kind).binary_data.get("a") or "")
    if kind is CONFIGMAP:
        assert blob[4:8] == b"\0\0\0\0"  # gzip mtime 0


@pytest.mark.parametrize("kind", KINDS)
def test_empty_state_and_empty_values(kind: ObjectKind) -> None:
    assert roundtrip({}, kind) == (Payload("plain", {}), {})
    files = {"empty": b"", "dot.ted": b"", "-_.": b"x"}
    payload, back = roundtrip(files, kind)
    assert payload.format == "plain"
    assert back == files
    with limits(40, 16):
        files = {"empty": b"", "blob": b"\xff" * 100, "z": b""}
        payload, back = roundtrip(files, kind)
        assert payload.format == "chunked"
        assert back == files


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", ["", ".", "..", "a/b", "a b", "ü", "x" * 254, "a\n"])
def test_invalid_keys_are_refused(kind: ObjectKind, key: str) -> None:
    with pytest.raises(ValueError, match="is not valid"):
        encode({key: b"x"}, kind)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        encode({"a": b"x"}, "lease")
    with pytest.raises(ValueError, match="kind"):
        decode("lease", "plain", {}, {})


# --------------------------------------------------------------------------------------------
# round trips

KEY_ALPHABET = string.ascii_letters + string.digits + "-._"
keys = st.text(KEY_ALPHABET, min_size=1, max_size=30).filter(lambda k: k not in (".", ".."))
values = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
    # compressible: repeated text
    st.tuples(st.text(min_size=1, max_size=8), st.integers(1, 200)).map(
        lambda p: (p[0] * p[1]).encode()
    ),
)
states = st.dictionaries(keys, values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(files=states, kind=st.sampled_from(KINDS))
@example(files={}, kind=CONFIGMAP)
@example(files={"a": b"\xff" * 500}, kind=SECRET)
def test_roundtrip_small_thresholds(files: dict[str, bytes], kind: ObjectKind) -> None:
    """With budgets of a few hundred bytes every format and many chunks come up."""
    with limits(300, 64):
        payload, back = roundtrip(files, kind)
        assert back == files
        assert payload.format == expected_format(files, 300)
        if payload.format == "chunked":
            pieces = [base64.b64decode(c["chunk"]) for c in payload.chunks]
            assert all(len(p) == 64 for p in pieces[:-1])
            assert 0 < len(pieces[-1]) <= 64
        else:
            assert payload_bytes(payload.data, payload.binary_data, kind) <= 300


@settings(max_examples=100, deadline=None)
@given(files=states, kind=st.sampled_from(KINDS))
def test_roundtrip_real_thresholds(files: dict[str, bytes], kind: ObjectKind) -> None:
    payload, back = roundtrip(files, kind)
    assert back == files
    assert payload.format == expected_format(files, MAX_OBJECT_BYTES)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 1_500_000), min_size=1, max_size=4),
    binary=st.lists(st.booleans(), min_size=4, max_size=4),
    kind=st.sampled_from(KINDS),
)
def test_roundtrip_varied_sizes(sizes: list[int], binary: list[bool], kind: ObjectKind) -> None:
    files = {
        f"f{i}": random_bytes(n, seed=i) if binary[i] else tfstate_like(n, seed=i)
        for i, n in enumerate(sizes)
    }
    payload, back = roundtrip(files, kind)
    assert back == files
    assert_fits(payload, kind)


def test_tfstate_like_compresses_like_a_real_state() -> None:
    value = tfstate_like(3 << 20, seed=3)
    assert len(value) == 3 << 20
    assert 4 < len(value) / len(gz(value)) < 10


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("content", ["json", "random"])
def test_roundtrip_3_mib(kind: ObjectKind, content: str) -> None:
    value = tfstate_like(3 << 20, seed=3) if content == "json" else random_bytes(3 << 20, 3)
    payload, back = roundtrip({"tfstate": value}, kind)
    assert back["tfstate"] == value
    assert_fits(payload, kind)
    if content == "json":
        assert payload.format == "gzip"  # ~5x: about 600 KB compressed
    else:
        assert payload.format == "chunked"
        assert len(payload.chunks) == 4  # 3 MiB / 900 KiB = 3.4


@pytest.mark.parametrize("content", ["json", "random"])
def test_roundtrip_30_mib(content: str, json_30m: bytes, random_30m: bytes) -> None:
    value = json_30m if content == "json" else random_30m
    payload, back = roundtrip({"tfstate": value, "small": b"ok"}, CONFIGMAP)
    assert back == {"tfstate": value, "small": b"ok"}
    assert_fits(payload, CONFIGMAP)
    doc = payload.manifest
    assert doc is not None
    if content == "random":
        # Incompressible: 30 MiB / 900 KiB = 34.1, so 35 chunks.
        assert len(payload.chunks) == doc["chunks"] == 35
        assert doc["size"] > 30 << 20
    else:
        assert 2 <= len(payload.chunks) <= 10
        assert doc["size"] < (30 << 20) / 4
    secret = encode({"tfstate": value, "small": b"ok"}, SECRET)
    assert secret.chunks == payload.chunks


# --------------------------------------------------------------------------------------------
# corrupt and mixed objects


@pytest.fixture
def small_chunks() -> Iterator[None]:
    with limits(2000, 1000):
        yield


def _chunked_pair(seed: int = 0) -> tuple[dict[str, bytes], Payload, Payload]:
    a = {"tfstate": random_bytes(8000, seed), "meta": b'{"serial": 1}'}
    b = {"tfstate": random_bytes(8000, seed + 1), "meta": b'{"serial": 2}'}
    pa, pb = encode(a, CONFIGMAP), encode(b, CONFIGMAP)
    assert pa.format == pb.format == "chunked"
    assert len(pa.chunks) == len(pb.chunks) == 9
    assert pa.generation != pb.generation
    return a, pa, pb


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("index", [0, 4, 8])
def test_a_chunk_from_another_generation_is_corrupt(index: int) -> None:
    _, pa, pb = _chunked_pair()
    mixed = list(pa.chunks)
    mixed[index] = pb.chunks[index]
    with pytest.raises(CorruptState, match="another save"):
        read_back(pa, CONFIGMAP, mixed)
    # the new manifest with the old chunks: same
    with pytest.raises(CorruptState):
        read_back(pb, CONFIGMAP, pa.chunks)


@pytest.mark.usefixtures("small_chunks")
def test_missing_extra_reordered_chunks_are_corrupt() -> None:
    files, pa, pb = _chunked_pair()
    assert read_back(pa, CONFIGMAP) == files
    chunks = pa.chunks
    for broken in (
        chunks[:-1],
        chunks[1:],
        chunks[:3] + chunks[4:],
        [*chunks, chunks[-1]],
        [chunks[1], chunks[0], *chunks[2:]],
        [*chunks[:-1], pb.chunks[-1]],
        [],
    ):
        with pytest.raises(CorruptState):
            read_back(pa, CONFIGMAP, broken)
    with pytest.raises(CorruptState, match="without its chunk"):
        decode(CONFIGMAP, "chunked", pa.data, {}, None)


@pytest.mark.usefixtures("small_chunks")
def test_truncated_or_damaged_chunks_are_corrupt() -> None:
    _, pa, _ = _chunked_pair()
    raw = base64.b64decode(pa.chunks[2]["chunk"])
    for damaged in (
        {"chunk": base64.b64encode(raw[:-1]).decode()},
        {"chunk": base64.b64encode(raw[:500]).decode()},
        {"chunk": ""},
        {"chunk": base64.b64encode(raw + b"\0").decode()},
        {"chunk": pa.chunks[2]["chunk"][:-4]},
        {"chunk": "not base64!"},
        {"chunk": pa.chunks[2]["chunk"][:-1]},
        {"other": pa.chunks[2]["chunk"]},
        {},
    ):
        chunks = [*pa.chunks[:2], damaged, *pa.chunks[3:]]
        with pytest.raises(CorruptState):
            read_back(pa, CONFIGMAP, chunks)


@pytest.mark.usefixtures("small_chunks")
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_is_detected(data: st.DataObject) -> None:
    _, pa, _ = _chunked_pair()
    index = data.draw(st.integers(0, len(pa.chunks) - 1))
    raw = bytearray(base64.b64decode(pa.chunks[index]["chunk"]))
    offset = data.draw(st.integers(0, len(raw) - 1))
    raw[offset] ^= data.draw(st.integers(1, 255))
    chunks = list(pa.chunks)
    chunks[index] = {"chunk": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(CorruptState):
        read_back(pa, CONFIGMAP, chunks)


def _forged(compressed: bytes, keys: list[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A main object and chunks whose manifest matches `compressed` exactly: only the archive's
    own checks stand between such content and the caller."""
    sha = hashlib.sha256(compressed).hexdigest()
    doc = {
        "version": 1,
        "chunks": 1,
        "size": len(compressed),
        "sha256": sha,
        "keys": keys,
        "generation": sha[:16],
    }
    return {"manifest": json.dumps(doc)}, [{"chunk": base64.b64encode(compressed).decode()}]


@pytest.mark.parametrize(
    ("archive", "keys", "message"),
    [
        (b'{"version":1,"files":[["a",5]]}\nabc', ["a"], "truncated"),
        (b'{"version":1,"files":[["a",2]]}\nabc', ["a"], "after the archive"),
        (b'{"version":1,"files":[["a",3]]}\nabc', ["b"], "keys differ"),
        (b'{"version":2,"files":[["a",3]]}\nabc', ["a"], "header"),
        (b'{"version":1,"files":[["a/b",3]]}\nabc', ["a"], "entry"),
        (b'{"version":1,"files":[["a",1],["a",2]]}\nabc', ["a"], "duplicate"),
        (b'{"version":1,"files":[["a",99999999999]]}\nabc', ["a"], "claims more"),
        (b"no header line", ["a"], "truncated"),
        (b"[1,2]\n", ["a"], "header"),
    ],
)
def test_a_consistent_manifest_over_a_bad_archive_is_corrupt(
    archive: bytes, keys: list[str], message: str
) -> None:
    data, chunks = _forged(gz(archive), keys)
    with pytest.raises(CorruptState, match=message):
        decode(CONFIGMAP, "chunked", data, {}, chunks)


def test_a_consistent_manifest_over_bad_gzip_is_corrupt() -> None:
    good = gz(b'{"version":1,"files":[["a",3]]}\nabc')
    for compressed in (b"not gzip at all", good[:-3], good[:10]):
        data, chunks = _forged(compressed, ["a"])
        with pytest.raises(CorruptState):
            decode(SECRET, "chunked", data, {}, chunks)
    data, chunks = _forged(good, ["a"])
    assert decode(SECRET, "chunked", data, {}, chunks) == {"a": b"abc"}
    # multi-member (one member per part) is the same archive
    split = gz(b'{"version":1,"files":[["a",3]]}\na') + gz(b"") + gz(b"bc")
    data, chunks = _forged(split, ["a"])
    assert decode(SECRET, "chunked", data, {}, chunks) == {"a": b"abc"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"version": 2}),
        json.dumps({"version": 1, "chunks": 0, "size": 1, "sha256": "0" * 64}),
        json.dumps(
            {
                "version": 1,
                "chunks": 1,
                "size": 1,
                "sha256": "0" * 64,
                "keys": ["a"],
                "generation": "G" * 16,
            }
        ),
        json.dumps(
            {
                "version": 1,
                "chunks": 1,
                "size": 1,
                "sha256": "0" * 64,
                "keys": ["a"],
                "generation": "0" * 15,
            }
        ),
        json.dumps(
            {
                "version": 1,
                "chunks": 1,
                "size": 1,
                "sha256": "0" * 64,
                "keys": ["b", "a"],
                "generation": "0" * 16,
            }
        ),
    ],
)
def test_a_malformed_manifest_is_corrupt(text: str) -> None:
    with pytest.raises(CorruptState, match="manifest"):
        decode(CONFIGMAP, "chunked", {"manifest": text}, {}, [])
    assert manifest({"manifest": text}) is None


def test_manifest_of_other_objects_is_none() -> None:
    plain = encode({"manifest": b'{"version": 1}', "x": b"y"}, CONFIGMAP)
    assert manifest(plain.data) is None
    assert manifest(plain.data, format="plain") is None
    assert manifest({}) is None
    assert manifest(None) is None
    with limits(50, 1000):
        chunked = encode({"manifest": random_bytes(100)}, CONFIGMAP)
    assert chunked.format == "chunked"
    assert manifest(chunked.data, format="gzip") is None
    assert manifest(chunked.data) == manifest(chunked.data, format="chunked") is not None
    with pytest.raises(CorruptState, match="manifest"):
        manifest({"x": "y"}, format="chunked")
    # A plain state holding one file called "manifest" that happens to look like one:
    # only the format annotation tells them apart, which is why the store passes it.
    assert manifest({"manifest": chunked.data["manifest"]}, format="plain") is None


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_gzip_values(kind: ObjectKind) -> None:
    files = {"tfstate": tfstate_like(1_200_000)}
    payload = encode(files, kind)
    assert payload.format == "gzip"
    field = "binary_data" if kind is CONFIGMAP else "data"
    blob = base64.b64decode(getattr(payload, field)["tfstate"])
    for broken in (
        blob[:-1],
        blob[:-8],
        blob[:100],
        blob[:10],
        blob + b"\0",
        blob + gz(b"more"),
        blob[:-8] + b"\0" * 8,
        b"",
        blob[:5000] + bytes([blob[5000] ^ 1]) + blob[5001:],
    ):
        stored = {"tfstate": base64.b64encode(broken).decode()}
        args = ({}, stored) if kind is CONFIGMAP else (stored, {})
        with pytest.raises(CorruptState):
            decode(kind, "gzip", *args)
    with pytest.raises(CorruptState, match="base64"):
        decode(SECRET, "gzip", {"tfstate": "%%%"}, {})


def test_corrupt_plain_secret_and_bad_keys() -> None:
    with pytest.raises(CorruptState, match="base64"):
        decode(SECRET, "plain", {"tfstate": "not base64"}, {})
    with pytest.raises(CorruptState, match="key"):
        decode(CONFIGMAP, "plain", {"a/b": "x"}, {})
    with pytest.raises(CorruptState, match="both"):
        decode(CONFIGMAP, "plain", {"a": "x"}, {"a": "eA=="})


def test_unknown_format() -> None:
    with pytest.raises(UnsupportedFormat, match="zstd") as caught:
        decode(CONFIGMAP, "zstd", {}, {})
    assert isinstance(caught.value, CorruptState)
    assert isinstance(caught.value, ValueError)


def test_objects_without_a_format_read_as_plain() -> None:
    """What the tutorial's `kubectl create configmap --from-file=tfstate=...` made."""
    state = b'{"version": 4}\n'
    assert decode(CONFIGMAP, None, {"tfstate": state.decode()}, None) == {"tfstate": state}
    assert decode(CONFIGMAP, "", {"t": "x"}, {"b": "/w=="}) == {"t": b"x", "b": b"\xff"}
    secret = {"tfstate": base64.b64encode(state).decode()}
    assert decode(SECRET, None, secret, None) == {"tfstate": state}


# --------------------------------------------------------------------------------------------
# digest


def test_digest_ignores_insertion_order() -> None:
    a = {"tfstate": b"1", "backup": b"2", "z": b""}
    b = dict(reversed(a.items()))
    assert list(a) != list(b)
    assert digest(a) == digest(b)
    assert len(digest(a)) == 64


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"a": b"bc"}, {"ab": b"c"}),
        ({"a": b""}, {}),
        ({"a": b"", "b": b""}, {"ab": b""}),
        ({"a": b"b", "c": b"d"}, {"a": b"bc", "d": b""}),
        ({"a": b"x"}, {"a": b"y"}),
        ({"a": b"x"}, {"b": b"x"}),
        ({"a": b"x"}, {"a": b"x\0"}),
        ({"a": b"\0"}, {"a": b""}),
    ],
)
def test_digest_framing_is_unambiguous(left: dict[str, bytes], right: dict[str, bytes]) -> None:
    assert digest(left) != digest(right)


@settings(max_examples=200)
@given(files=states, data=st.data())
def test_digest_changes_with_any_byte_or_key(files: dict[str, bytes], data: st.DataObject) -> None:
    assume(files)
    key = data.draw(st.sampled_from(sorted(files)))
    changed = dict(files)
    value = files[key]
    if value and data.draw(st.booleans()):
        offset = data.draw(st.integers(0, len(value) - 1))
        flipped = bytearray(value)
        flipped[offset] ^= data.draw(st.integers(1, 255))
        changed[key] = bytes(flipped)
    elif data.draw(st.booleans()):
        changed[key] = value + data.draw(st.binary(min_size=1, max_size=3))
    else:
        new_key = data.draw(keys.filter(lambda k: k not in files))
        changed[new_key] = changed.pop(key)
    assert digest(changed) != digest(files)
    assert digest(dict(sorted(files.items(), reverse=True))) == digest(files)


def test_digest_of_decoded_state_matches() -> None:
    files = {"tfstate": tfstate_like(50_000), "bin": random_bytes(5000)}
    for kind in KINDS:
        assert digest(read_back(encode(files, kind), kind)) == digest(files)


# --------------------------------------------------------------------------------------------
# streaming: a chunk at a time, the manifest last


def test_encode_stream_makes_each_chunk_when_asked_and_the_manifest_after_the_last() -> None:
    files = {"tfstate": random_bytes(3 << 20, seed=5), "meta": b"{}"}
    encoding = codec.encode_stream(files, CONFIGMAP)
    assert encoding.format == "chunked"
    assert re.fullmatch(r"[0-9a-f]{16}", encoding.generation or "")
    chunks = encoding.chunks()
    first = next(chunks)
    assert isinstance(first, bytes) and len(base64.b64decode(first)) == CHUNK_BYTES
    with pytest.raises(RuntimeError, match="chunk"):
        encoding.payload()  # the manifest needs the size and checksum of every chunk
    rest = list(chunks)
    payload = encoding.payload()
    assert payload.chunks == []
    assert payload.generation == encoding.generation
    doc = payload.manifest
    assert doc is not None and doc["chunks"] == 1 + len(rest) == 4
    assert list(encoding.chunks()) == []  # handed out once
    stored = [{"chunk": chunk.decode("ascii")} for chunk in (first, *rest)]
    assert decode(CONFIGMAP, "chunked", payload.data, {}, iter(stored)) == files


@pytest.mark.parametrize("kind", KINDS)
def test_encode_stream_of_a_state_that_fits_one_object_is_ready_at_once(kind: ObjectKind) -> None:
    for files, fmt in (({"a": b"text"}, "plain"), ({"a": tfstate_like(1_200_000)}, "gzip")):
        encoding = codec.encode_stream(files, kind)
        assert encoding.format == fmt
        assert encoding.generation is None
        assert list(encoding.chunks()) == []
        assert encoding.payload() == encode(files, kind)


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("index", [0, 4, 8])
def test_a_mix_of_saves_is_told_after_the_last_chunk_before_any_file(index: int) -> None:
    _, pa, pb = _chunked_pair()
    mixed = list(pa.chunks)
    mixed[index] = pb.chunks[index]
    decoder = codec.ChunkedDecoder(pa.data)
    for chunk in mixed:  # the garbled archive is not what is reported: the mix is
        decoder.feed(chunk)
    with pytest.raises(CorruptState, match="another save"):
        decoder.finish()


@pytest.mark.usefixtures("small_chunks")
def test_a_chunk_too_many_or_too_big_stops_the_decoder_at_once() -> None:
    files, pa, _ = _chunked_pair()
    decoder = codec.ChunkedDecoder(pa.data)
    for chunk in pa.chunks:
        decoder.feed(chunk)
    with pytest.raises(CorruptState, match="names 9 chunks but more"):
        decoder.feed(pa.chunks[-1])
    decoder = codec.ChunkedDecoder(pa.data)
    for chunk in pa.chunks[:-1]:
        decoder.feed(chunk)
    with pytest.raises(CorruptState, match="do not match"):
        decoder.feed({"chunk": base64.b64encode(b"\0" * 1001).decode()})
    decoder = codec.ChunkedDecoder(pa.data)
    for chunk in pa.chunks:
        decoder.feed(chunk)
    assert decoder.finish() == files
    assert decoder.digest == digest(files)


class _Chunk(dict[str, str]):
    """A chunk object's data that can be watched for being let go."""


def test_chunks_are_read_one_at_a_time_and_let_go() -> None:
    """decode takes each chunk from its iterable only when it wants it, and has dropped the
    one before by then: one chunk's data in memory at a time."""
    files = {"tfstate": random_bytes(3 << 20, seed=6)}
    payload = encode(files, SECRET)
    pulled: list[int] = []

    def fetch() -> Iterator[dict[str, str]]:
        previous = None
        for index in range(len(payload.chunks)):
            assert previous is None or previous() is None, f"chunk {index - 1} still held"
            pulled.append(index)
            chunk = _Chunk(payload.chunks[index])
            previous = weakref.ref(chunk)
            yield chunk
            del chunk

    assert decode(SECRET, "chunked", payload.data, {}, fetch()) == files
    assert pulled == [0, 1, 2, 3]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "files",
    [
        {},
        {"tfstate": b"text", "empty": b""},
        {"tfstate": tfstate_like(1_200_000, seed=2), "bin": b"\xff"},
        {"tfstate": random_bytes(2_000_000, seed=2), "empty": b"", "z": b"z"},
    ],
    ids=["empty", "plain", "gzip", "chunked"],
)
def test_decode_digest_is_the_digest_of_decode(kind: ObjectKind, files: dict[str, bytes]) -> None:
    payload = encode(files, kind)
    args = (kind, payload.format, payload.data, payload.binary_data)
    assert codec.decode_digest(*args, iter(payload.chunks)) == digest(files)
    assert codec.decode_with_digest(*args, iter(payload.chunks)) == (files, digest(files))


def test_a_manifest_whose_generation_is_its_checksum_still_reads() -> None:
    """Earlier runners named a save's chunks after its sha256's first 16 hex digits."""
    files = {"tfstate": random_bytes(1_500_000, seed=8)}
    payload = encode(files, CONFIGMAP)
    doc = payload.manifest
    assert doc is not None
    doc["generation"] = doc["sha256"][:16]
    data = {"manifest": json.dumps(doc, sort_keys=True, separators=(",", ":"))}
    assert decode(CONFIGMAP, "chunked", data, {}, payload.chunks) == files


def test_digest_of_an_archive_not_in_key_order() -> None:
    """Never written so, but readable: the digest is taken of the files once they are in."""
    data, chunks = _forged(gz(b'{"version":1,"files":[["b",2],["a",1]]}\nbbA'), ["a", "b"])
    files = {"a": b"A", "b": b"bb"}
    assert decode(CONFIGMAP, "chunked", data, {}, chunks) == files
    assert codec.decode_digest(CONFIGMAP, "chunked", data, {}, chunks) == digest(files)


@pytest.mark.parametrize("content", ["json", "random"])
def test_30_mib_streams_through_with_one_chunk_in_memory(
    content: str, json_30m: bytes, random_30m: bytes, tmp_path: Path
) -> None:
    """Encoding holds about one chunk besides its input, decoding one chunk besides its
    output (Python allocations, traced): each chunk goes to disk here as it is made."""
    import tracemalloc

    value = json_30m if content == "json" else random_30m
    mib = 1 << 20
    tracemalloc.start()
    try:
        encoding = codec.encode_stream({"tfstate": value}, CONFIGMAP)
        count = 0
        for index, chunk in enumerate(encoding.chunks()):
            (tmp_path / str(index)).write_bytes(chunk)
            count += 1
            del chunk
        data = encoding.payload().data
        encode_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()

        def fetch() -> Iterator[dict[str, str]]:
            for index in range(count):
                yield {"chunk": (tmp_path / str(index)).read_text("ascii")}

        files = decode(CONFIGMAP, "chunked", data, {}, fetch())
        decode_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert files == {"tfstate": value}
    assert encode_peak < 8 * mib, f"encoding peaked {encode_peak / mib:.1f} MiB above its input"
    assert decode_peak < len(value) + 8 * mib, (
        f"decoding peaked {(decode_peak - len(value)) / mib:.1f} MiB above its output"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_manifest_too_big_for_its_object_is_refused_before_any_chunk(kind: ObjectKind) -> None:
    files = {f"{i:05d}" + "k" * 240: b"" for i in range(4200)}  # over the budget: not plain
    with pytest.raises(ValueError, match="too many keys"):
        codec.encode_stream(files, kind)  # not when the last chunk has gone out
    fewer = {**dict(list(files.items())[:300]), "blob": random_bytes(1_100_000)}
    payload, back = roundtrip(fewer, kind)
    assert payload.format == "chunked" and back == fewer


def test_a_value_that_does_not_compress_is_stored_in_its_gzip_member_as_it_is() -> None:
    """An encrypted state (compressed before it was encrypted) is not deflated again: its
    member is the bytes plus gzip's and deflate's framing, and reads back the same."""
    value = random_bytes(2_000_000, seed=5)
    text = b'{"serial": 1}\n' * 100_000
    _, back = roundtrip({"enc": value, "tfstate": text}, CONFIGMAP)
    assert back == {"enc": value, "tfstate": text}
    stored = b"".join(piece for _, piece in codec_formats.compress_files({"enc": value}, ["enc"]))
    assert len(value) < len(stored) <= len(value) + 18 + 5 * (len(value) // 16_000 + 1)
    assert zlib.decompress(stored, 31) == value
    deflated = b"".join(p for _, p in codec_formats.compress_files({"t": text}, ["t"]))
    assert len(deflated) < len(text) // 50
