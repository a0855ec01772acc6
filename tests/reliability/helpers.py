"""What the reliability tests (and `bench/faults.py`) share: a counter step whose every state is
known exactly, readers of what a store holds, and process helpers.

The counter step runs `bump.py`: it reads `count.txt`, checks that the restored files belong
together (the history and the big blob must match the count, else it exits 9: a mixed
state), then writes count + 1, the history with one more line and the blob of the new count.
So the state after n successful runs is exactly `expected_state(n, big)`, and a stored state
can be compared with the old and the new one by digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.state.base import StateRef
from runner.state.configmap_secret import ConfigMapStore, SecretStore
from runner.state.kubeapi import Kube, load_client
from runner.state.local import LocalStore

PY = sys.executable
STATE_NAME = "counter"
NAMESPACE = "default"
REF = StateRef("counter", STATE_NAME, NAMESPACE, "my-app", "default")
BIG_KUBE = 3_000_000  # incompressible bytes: 4 chunk objects of 900 KiB
BIG_LOCAL = 64_000_000

BUMP = r'''
import hashlib, os, random, signal, sys, time

signal.signal(signal.SIGINT, signal.SIG_DFL)  # stopped by SIGINT quietly, like SIGTERM

def blob(n, size):
    return random.Random(n).randbytes(size)

def mark(what):
    path = os.environ.get("BUMP_INTERVALS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{what} {time.time():.6f} {os.getpid()}\n".encode())
        os.close(fd)

mark("start")
touch = os.environ.get("BUMP_READY")
size = int(os.environ.get("BUMP_BIG") or 0)
n = int(open("count.txt").read()) if os.path.exists("count.txt") else 0
history = open("history.txt").read() if os.path.exists("history.txt") else ""
if history != "".join(f"{i}\n" for i in range(1, n + 1)):
    print(f"MIXED STATE: count {n} with history {history[-40:]!r}", flush=True)
    sys.exit(9)
if size and n and open("big.bin", "rb").read() != blob(n, size):
    print(f"MIXED STATE: count {n} with another run's blob", flush=True)
    sys.exit(9)
time.sleep(float(os.environ.get("BUMP_SLEEP") or 0))
with open("history.txt", "a") as fh:
    fh.write(f"{n + 1}\n")
if size:
    with open("big.bin", "wb") as fh:
        fh.write(blob(n + 1, size))
with open("count.txt", "w") as fh:
    fh.write(f"{n + 1}\n")
print(f"count is {n + 1}", flush=True)
mark("end")
then_fail = os.environ.get("BUMP_THEN_FAIL")  # {"url": API, "fail": {...}}: faults from now on
if then_fail:
    import json, urllib.request
    spec = json.loads(then_fail)
    urllib.request.urlopen(urllib.request.Request(
        spec["url"] + "/_fake/fail", data=json.dumps(spec["fail"]).encode(), method="POST",
        headers={"Content-Type": "application/json"}), timeout=10).read()
if touch:
    open(touch, "w").close()
    time.sleep(float(os.environ.get("BUMP_HOLD") or 0))
'''


def blob(n: int, size: int) -> bytes:
    return random.Random(n).randbytes(size)


def expected_state(n: int, big: int = 0) -> dict[str, bytes] | None:
    """The files stored after exactly n successful runs (None: no state yet)."""
    if n == 0:
        return None
    files = {
        "count": f"{n}\n".encode(),
        "history": "".join(f"{i}\n" for i in range(1, n + 1)).encode(),
    }
    if big:
        files["big"] = blob(n, big)
    return files


def digest(files: dict[str, bytes] | None) -> str | None:
    if files is None:
        return None
    h = hashlib.sha256()
    for key in sorted(files):
        h.update(json.dumps([key, len(files[key])]).encode())
        h.update(files[key])
    return h.hexdigest()


def state_number(files: dict[str, bytes] | None, big: int = 0) -> int:
    """n such that files == expected_state(n, big) exactly; AssertionError for anything else."""
    if files is None:
        return 0
    try:
        n = int(files.get("count", b"").decode())
    except ValueError:
        n = -1
    if n < 1 or digest(files) != digest(expected_state(n, big)):
        summary = {k: (v[:40] if k != "big" else f"<{len(v)} bytes>") for k, v in files.items()}
        raise AssertionError(f"stored state is not one whole state: {summary}")
    return n


def which_state(files: dict[str, bytes] | None, candidates: range, big: int = 0) -> int:
    """n such that files == expected_state(n, big), for n in candidates; AssertionError if none."""
    found = digest(files)
    for n in candidates:
        if digest(expected_state(n, big)) == found:
            return n
    summary = {k: (v[:40] if k != "big" else f"<{len(v)} bytes>") for k, v in (files or {}).items()}
    raise AssertionError(f"stored state is none of n in {candidates}: {summary}")


def counter_step(pipeline: Any, store: str = "configmap", big: int = 0, save: str = "always",
                 lock: bool = True) -> None:
    """The counter step, with the state in `store` (configmap, secret or local)."""
    script = pipeline.root / "bump.py"
    script.write_text(BUMP)
    files = "[{path: count.txt, key: count}, {path: history.txt, key: history}"
    files += ", {path: big.bin, key: big}]" if big else "]"
    pipeline.step("counter", f"""
        workdir: ../work
        copyWorkdir: true
        env: {{BUMP_BIG: "{big}"}}
        state:
          store: {store}
          name: {STATE_NAME}
          files: {files}
          save: {save}
          lock: {"true" if lock else "false"}
        run:
          - [{json.dumps(PY)}, {json.dumps(str(script))}]
    """)


def make_pipeline(root: Path) -> Any:
    """A pipeline like the `pipeline` fixture's, in `root` (for tests that need several)."""
    from tests.conftest import DEFAULT_REQUEST, Pipeline, base_env

    pipeline = Pipeline(root, base_env(root))
    for folder in (pipeline.steps, pipeline.input, pipeline.output, pipeline.metadata,
                   pipeline.work, root / "tmp"):
        folder.mkdir(parents=True)
    pipeline.request(DEFAULT_REQUEST)
    return pipeline


def point_at(pipeline: Any, api: Any, lease_seconds: int = 2) -> None:
    """Make `runner run` use the loopback API server (as the `kube` fixture does)."""
    config = api.write_kubeconfig(pipeline.root / "kubeconfig")
    pipeline.env.pop("RUNNER_STATE_STORE", None)
    pipeline.env.update(KUBECONFIG=str(config), RUNNER_LEASE_SECONDS=str(lease_seconds))


# -- reading what a store holds ----------------------------------------------------------------


def kube_store(api: Any, tmp: Path, store: str = "configmap") -> ConfigMapStore | SecretStore:
    config = api.write_kubeconfig(tmp / "kubeconfig-reader")
    cls = ConfigMapStore if store == "configmap" else SecretStore
    return cls(Kube(load_client({"KUBECONFIG": str(config)}), attempts=3, backoff=0.05),
               "reliability-reader", 5)


def stored(api: Any, tmp: Path, store: str = "configmap") -> dict[str, bytes] | None:
    """The state as a fresh ConfigMapStore/SecretStore decodes it, with faults switched off."""
    faults = api._faults
    api.fail()
    try:
        reader = kube_store(api, tmp, store)
        try:
            loaded = reader.load(REF)
            return None if loaded is None else loaded.files
        finally:
            reader.close()
    finally:
        api._faults = faults


def stored_local(state_dir: Path) -> dict[str, bytes] | None:
    loaded = LocalStore(state_dir).load(REF)
    return None if loaded is None else loaded.files


def lease_holder(api: Any) -> str | None:
    lease = api.get_object("leases", NAMESPACE, STATE_NAME)
    return ((lease or {}).get("spec") or {}).get("holderIdentity")


def chunk_objects(api: Any, resource: str = "configmaps") -> list[str]:
    return sorted(n for n in api.objects(resource, NAMESPACE) if n != STATE_NAME)


# -- runs one after another under API faults --------------------------------------------------


@dataclass
class Tally:
    """What a series of runs did to the counter."""

    runs: int = 0
    ok: int = 0
    failed: int = 0  # exit 3: the store or the cluster failed
    applied: int = 0  # exit-3 runs whose save landed all the same (a lost answer)
    lost: int = 0  # successful runs whose increment is not in the stored state
    duplicated: int = 0  # increments beyond one per run
    other: list[str] = field(default_factory=list)  # any other exit, or a traceback
    reasons: Counter[str] = field(default_factory=Counter)  # why exit-3 runs gave up
    seconds: list[float] = field(default_factory=list)
    final: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.other)


def counted_runs(pipeline: Any, api: Any, tmp: Path, runs: int, faults: dict[str, Any],
                 big: int = 0, store: str = "configmap", timeout: float = 180) -> Tally:
    """`runs` runs of the counter step one after another while the API server injects
    `faults`; after each, the stored state is read (faults paused) and must be exactly the one
    before or the one after, as the exit code says."""
    tally = Tally()
    before = state_number(stored(api, tmp, store), big)
    api.fail(**faults)
    for _ in range(runs):
        began = time.monotonic()
        result = pipeline.run("run", "--lock-wait", "30", timeout=timeout, check_traceback=False)
        tally.seconds.append(time.monotonic() - began)
        tally.runs += 1
        after = state_number(stored(api, tmp, store), big)
        if "Traceback" in result.stderr or result.returncode not in (0, 3):
            tally.other.append(f"exit {result.returncode}: {result.stderr[-600:]}")
        elif result.returncode == 0:
            tally.ok += 1
            if f"count is {before + 1}" not in result.stdout:
                tally.other.append(f"ran on a stale state: {result.stdout!r}")
        else:
            tally.failed += 1
            tally.applied += after - before if after == before + 1 else 0
            tally.reasons[_reason(result.stderr)] += 1
        if result.returncode == 0 and after == before:
            tally.lost += 1
        if after > before + 1:
            tally.duplicated += after - before - 1
        if after < before:
            tally.lost += before - after
        before = after
    api.fail()
    tally.final = before
    return tally


def _reason(stderr: str) -> str:
    """The runner's error line, with the parts that vary from run to run taken out."""
    lines = [line for line in stderr.splitlines() if "error:" in line] or ["(no error line)"]
    text = re.sub(r"https?://[\d.:]+", "API", lines[-1].split("error:", 1)[-1].strip())
    text = re.sub(r"\b[0-9a-f]{16}\b", "GEN", text)
    return re.sub(r"\(\d+, '", "('", text)[:160]


# -- the intervals of command executions -------------------------------------------------------


def intervals(path: Path) -> list[tuple[float, float | None, int]]:
    """(start, end or None, pid) of each bump.py execution, by start time."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            what, stamp, pid = line.split()
            (starts if what == "start" else ends)[int(pid)] = float(stamp)
    return sorted((s, ends.get(pid), pid) for pid, s in starts.items())


def overlaps(spans: list[tuple[float, float | None, int]]) -> list[tuple[int, int]]:
    """Pairs of executions that ran at the same time (an unfinished one lasts forever)."""
    found = []
    for (_s1, e1, p1), (s2, _e2, p2) in itertools.pairwise(spans):
        if e1 is None or s2 < e1:
            found.append((p1, p2))
    return found


# -- processes ---------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(predicate: Any, within: float, poll: float = 0.002) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    """Read the runner's stderr until a line containing `text` (what it read so far, to hand
    on): a test then acts at a known point of the run, however slowly the machine starts it."""
    import select

    assert process.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([process.stderr], [], [], left)[0]:
            raise AssertionError(f"no line with {text!r} within {timeout}s; stderr so far:\n{seen}")
        line = process.stderr.readline()
        if not line:
            raise AssertionError(f"the runner ended before {text!r}; stderr:\n{seen}")
        seen += line
    return seen


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """Wait for a runner; kill it (and report -9) if it outlives `timeout`."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return -9, out, err + f"\n[reliability] killed: still running after {timeout}s"
    return process.returncode, out, err


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
