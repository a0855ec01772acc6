"""One store's save and restore of one state, in a fresh process: what bench/scenarios/stores.py
runs as a child, once per store, size and plain/encrypted, so each figure's peak RSS is that
of the store code alone (a `runner` process holds the state's files the same way).

    .venv/bin/python bench/store_io.py KIND LOCATION SIZE ROUNDS [--encrypted]

KIND is a store kind (local, configmap, s3), LOCATION what follows `KIND:` in --state-store
("-": none); the store reads its environment (KUBECONFIG, AWS_*) as the runner does. It saves a
SIZE-byte Terraform-like state (first save: the object is created), then ROUNDS times restores
it and saves it changed, checking each restore byte for byte. Prints one JSON line: seconds of
the first save, of each restore and save, and VmHWM (peak RSS, kB). Encrypted: the
`state.encryption` layer (runner/state/encryption.py) with a fixed 32-byte key, as a step with
`encryption: {key: ...}` gets it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import fake_tfstate  # noqa: E402


def hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


def main(argv: list[str]) -> int:
    kind, location, size_text, rounds_text = argv[:4]
    encrypted = "--encrypted" in argv[4:]
    size, rounds = int(size_text), int(rounds_text)
    payload = fake_tfstate(size, seed=size)
    base = hwm_kb()  # the interpreter and the payload, before any store code ran

    from runner.state import open_store
    from runner.state.base import StateRef

    store = open_store(kind, None if location == "-" else location, dict(os.environ))
    if encrypted:
        from runner.state.encryption import EncryptedStore, Keys, StateKey

        store = EncryptedStore(store, Keys(StateKey(bytes(range(32)), "bench key")))
    name = f"bench-{kind}-{size}-{'enc' if encrypted else 'plain'}-{os.getpid()}"
    ref = StateRef("bench", name, "default", bucket=None)
    t0 = time.perf_counter()
    version = store.save(ref, {"tfstate": payload}, expected=None)
    first = time.perf_counter() - t0
    loads, saves = [], []
    current = payload
    for i in range(rounds):
        t0 = time.perf_counter()
        loaded = store.load(ref)
        loads.append(time.perf_counter() - t0)
        if loaded is None or loaded.files.get("tfstate") != current:
            print(json.dumps({"error": "restored state differs"}))
            return 1
        del loaded
        current = current + f"applied {i}\n".encode()
        t0 = time.perf_counter()
        version = store.save(ref, {"tfstate": current}, expected=version)
        saves.append(time.perf_counter() - t0)
    store.remove(ref)
    store.close()
    print(json.dumps({"first": first, "load": loads, "save": saves, "hwm_kb": hwm_kb(),
                      "base_kb": base}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
