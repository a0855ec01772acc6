"""Peak memory of a 30 MiB state's round trip through ConfigMapStore: a regression guard; and
the store guarantees that streaming the chunks rests on.

Kratix runs the pipeline in a pod limited to 256 MiB by default, shared with terraform, so a
big state must pass through the store a chunk at a time (runner/state/codec/chunks.py,
runner/state/configmap_secret.py). A fresh interpreter saves 30 MiB of incompressible bytes (the
most chunk objects: 35), then loads them back into another store object, against the loopback
API server running in this process, and reports its VmHWM (peak RSS) as it goes: about 43 MB
above where it started (the 31.5 MB state and a few chunks in flight). The store that held all
the chunks' base64 at once peaked about 100 MB above it here.

The bounds have room for allocator noise; they are not timing asserts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.base.errors import StoreError
from runner.state import codec
from runner.state.base import StateRef
from runner.state.codec import chunk_manifest as codec_manifests
from runner.state.configmap_secret import ConfigMapStore
from runner.state.kubeapi import Kube, load_client
from tests.conftest import REPO
from tests.kubeapi import FakeKubeAPI

MIB = 1 << 20
MB = 1_000_000
STATE = 30 * MIB

CHILD = textwrap.dedent(
    """
    import gc, json, os, sys

    def hwm():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    from runner.state import codec
    from runner.state.base import StateRef
    from runner.state.kubeapi import Kube, load_client
    from runner.state.configmap_secret import ConfigMapStore

    kubeconfig, size = sys.argv[1], int(sys.argv[2])

    def store():
        return ConfigMapStore(Kube(load_client({"KUBECONFIG": kubeconfig})), "memory-test", 5)

    ref = StateRef("memory", "memory-state", "default", "my-app", "default")
    first = store()
    first.load(ref)  # nothing there yet: the client is warm, as in a run
    started = hwm()
    files = {"tfstate": os.urandom(size)}  # incompressible: the most chunks
    expected = codec.digest(files)
    first.save(ref, files)
    saved = hwm()
    del files
    gc.collect()
    loaded = store().load(ref)
    ok = loaded is not None and codec.digest(loaded.files) == expected
    print(json.dumps({"started": started, "saved": saved, "peak": hwm(), "ok": ok}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_30_mib_round_trip_holds_about_one_copy_of_the_state(tmp_path: Path) -> None:
    with FakeKubeAPI() as api:
        config = api.write_kubeconfig(tmp_path / "kubeconfig")
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(config), str(STATE)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        chunks = [n for n in api.objects("configmaps", "default") if n != "memory-state"]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["ok"], "the state did not read back byte for byte"
    assert len(chunks) == 35
    started, peak = figures["started"], figures["peak"]
    above = peak - started
    print(
        f"\nVmHWM: {started / MB:.1f} MB before, {figures['saved'] / MB:.1f} MB after the save, "
        f"{peak / MB:.1f} MB at the end: {above / MB:.1f} MB above the start for a "
        f"{STATE / MB:.1f} MB state"
    )
    # The state itself (the bytes saved, then the bytes loaded: one at a time) plus a few
    # chunks' worth in flight; all the chunks at once would be 40 MB more.
    assert above < STATE + 25 * MB, f"{above / MB:.1f} MB above the start"
    assert peak < 160 * MB, f"peak {peak / MB:.1f} MB"


# -- what streaming changed in the store ---------------------------------------------------------
# A save now takes a random generation and sends each chunk as soon as it is made; these pin the
# guarantees that rest on that (chunks before the manifest, no mix, nothing left behind).

REF = StateRef("memory", "memory-state", "default", "my-app", "default")
MAIN = ("configmaps", "default", REF.name)


def open_store(api: FakeKubeAPI, tmp_path: Path) -> ConfigMapStore:
    config = api.write_kubeconfig(tmp_path / "kubeconfig-inproc")
    return ConfigMapStore(
        Kube(load_client({"KUBECONFIG": str(config)}), attempts=4, backoff=0.05), "holder", 5
    )


def chunk_names(api: FakeKubeAPI) -> list[str]:
    return sorted(n for n in api.objects("configmaps", "default") if n != REF.name)


def test_each_chunk_is_on_the_server_before_the_next_is_made_and_the_manifest_last(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_server: list[tuple[int, bool]] = []  # as each chunk is made: chunks stored, main stored
    real = codec.encode_stream

    def watched(*args: Any, **kwargs: Any) -> codec.Encoding:
        encoding = real(*args, **kwargs)
        chunks = encoding.chunks()

        def made() -> Iterator[bytes]:
            for chunk in chunks:
                on_server.append((len(chunk_names(api)), api.get_object(*MAIN) is not None))
                yield chunk

        encoding._chunks = made()
        return encoding

    monkeypatch.setattr(codec, "encode_stream", watched)
    files = {"tfstate": os.urandom(3 * MIB)}
    open_store(api, tmp_path).save(REF, files)
    assert on_server == [(0, False), (1, False), (2, False), (3, False)]
    assert len(chunk_names(api)) == 4
    assert open_store(api, tmp_path).load(REF).files == files


def test_a_second_save_of_the_same_state_writes_new_chunks_and_deletes_the_old(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    files = {"tfstate": os.urandom(2 * MIB)}
    store = open_store(api, tmp_path)
    store.save(REF, files)
    first = chunk_names(api)
    store.save(REF, files)
    second = chunk_names(api)
    assert len(first) == len(second) == 3 and not set(first) & set(second)
    assert open_store(api, tmp_path).load(REF).files == files


def test_writes_whose_answer_was_lost_are_taken_as_ours_and_nothing_is_left_behind(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first chunk's create and the main object's update both land, but their answers
    never come: the retried create meets its own chunk (409, same content), the retried update
    meets its own manifest (409, same state), and the old generation's chunks still go."""
    import urllib3

    store = open_store(api, tmp_path)
    store.save(REF, {"tfstate": os.urandom(2 * MIB)})
    old = chunk_names(api)
    lost: list[str] = []
    real = Kube._send

    def send(self: Kube, method: str, path: str, body: bytes | None, accept: str) -> bytes:
        data = real(self, method, path, body, accept)
        if method in ("POST", "PUT") and method not in lost:
            lost.append(method)
            raise urllib3.exceptions.ProtocolError("connection reset: the answer is lost")
        return data

    monkeypatch.setattr(Kube, "_send", send)
    files = {"tfstate": os.urandom(2 * MIB)}
    store.save(REF, files)
    assert lost == ["POST", "PUT"]
    assert api.count("POST", "/configmaps", 409) == 1 and api.count("PUT", "/configmaps", 409) == 1
    monkeypatch.undo()
    new = chunk_names(api)
    assert len(new) == 3 and not set(new) & set(old), (old, new)
    assert open_store(api, tmp_path).load(REF).files == files


def test_a_chunk_object_with_other_content_is_never_taken_for_ours(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codec_manifests, "new_generation", lambda: "00000000000000aa")
    files = {"tfstate": os.urandom(2 * MIB)}
    api.put_object(
        "configmaps",
        "default",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{REF.name}-00000000000000aa-0", "namespace": "default"},
            "binaryData": {"chunk": "b3RoZXI="},
        },
    )
    store = open_store(api, tmp_path)
    with pytest.raises(StoreError, match="already exists with other content"):
        store.save(REF, files)
    assert api.get_object(*MAIN) is None  # no manifest over chunks that aren't its own
