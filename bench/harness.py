"""The bench's harness: the step both contenders run, one pipeline container's folders, the
two contenders (`runner run` and bench/seed_script.sh) timed with their API requests and
phases, and the Bench that holds the table's rows, the goals and the notes. Each scenario
(bench/scenarios/) measures with it; bench/run.py prints what they gathered."""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    MIB,
    RUNNER,
    VENV_BIN,
    KubeAPI,
    Series,
    Timed,
    log_events,
    log_time,
    run_timed,
)

BENCH = Path(__file__).resolve().parent
SEED_SCRIPT = BENCH / "seed_script.sh"
COMMAND = ["bash", "-c", 'echo "applied $$" >> state.tfstate']  # the same in both
STEP = """\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata:
  name: bench-state
  description: The seed script's state handling around a trivial command.
spec:
  on: {workflow: resource, action: [configure]}
  inputs:
    name:      { query: .metadata.name }
    namespace: { query: .metadata.namespace, default: default }
  workdir: ../terraform
  state:
    store: configmap
    name: "${{ inputs.name }}-state"
    namespace: "${{ inputs.namespace }}"
    files:
      - { path: state.tfstate, key: tfstate }
    save: always
    lock: true
  run:
    - ARGV
""".replace("ARGV", json.dumps(COMMAND))
STEP_NAME = "bench-state"
SMALL_STATE = b'{\n  "version": 4,\n  "serial": 1\n}\n'
BIG = int(0.9 * MIB)  # the largest state the seed's one ConfigMap holds, with room to grow
HUGE = (10 * MIB, 30 * MIB)  # quick mode: the smallest only
RSS_GOAL_MB = 60


OPEN_LOCK_RESTORE = "open store (imports the kubernetes client) + lock + restore"


class BenchError(Exception):
    """A measurement could not be taken (a run failed): said once, then the run stops."""


# ---------------------------------------------------------------------------------------------
# one pipeline container's folders


@dataclass
class World:
    root: Path
    name: str  # the request's metadata.name: the state object is NAME-state

    @property
    def input(self) -> Path:
        return self.root / "kratix" / "input"

    @property
    def output(self) -> Path:
        return self.root / "kratix" / "output"

    @property
    def metadata(self) -> Path:
        return self.root / "kratix" / "metadata"

    @property
    def steps(self) -> Path:
        return self.root / "steps.d"

    @property
    def terraform(self) -> Path:
        return self.root / "terraform"

    @property
    def state_name(self) -> str:
        return f"{self.name}-state"

    def reset(self) -> None:
        """A new pod: empty output and metadata, no files left in the workdir."""
        for folder in (self.output, self.metadata, self.terraform):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)


def make_world(root: Path, name: str) -> World:
    world = World(root / name, name)
    for folder in (world.input, world.steps):
        folder.mkdir(parents=True)
    world.reset()
    (world.input / "object.yaml").write_text(
        f"apiVersion: workshop.kratix.io/v1\nkind: App\nmetadata:\n  name: {name}\n"
        "  namespace: default\nspec:\n  image: nginx\n  tier: small\n"
    )
    (world.steps / f"{STEP_NAME}.yaml").write_text(STEP)
    # As the image build does (Dockerfile: `runner validate --stamp /steps.d`), so runs skip
    # re-checking the step files; without it each run pays ~50 ms more (jsonschema).
    subprocess.run(
        [RUNNER, "validate", "--stamp", str(world.steps)], check=True, capture_output=True
    )
    return world


# ---------------------------------------------------------------------------------------------
# the two contenders


@dataclass
class Run:
    """One timed run of either contender: the process, the API requests it made, its phases."""

    timed: Timed
    requests: list[tuple[str, str, int]]
    phases: dict[str, float]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        # Quick mode (--quick, BENCH_QUICK=1): every section once at its smallest size, so a
        # test can check the bench still works; its figures are not worth quoting.
        self.quick: bool = args.quick
        self.runs = args.runs or (1 if self.quick else 7)
        self.huge_sizes = HUGE[:1] if self.quick else HUGE
        self.huge_rounds = 1 if self.quick else 3  # in-process rounds and end-to-end runs
        self.explain: bool = args.explain or self.quick  # quick mode runs that section too
        self.scale_runs = 1 if self.quick else 3  # "where the time goes": its reference runs
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.api = KubeAPI(tmp / "kubeconfig", tmp / "kubeapi.log")
        self.kubeconfig = tmp / "kubeconfig"
        self.counter = 0
        # The loopback server serves no OpenAPI documents, so `kubectl replace`'s client-side
        # validation would fail; a real API server serves them (and kubectl fetches them).
        self.openapi = self.api.serves("/openapi/v3") or self.api.serves("/openapi/v2")
        self.replace_flags = "" if self.openapi else "--validate=false"
        self.rows: list[list[str]] = []
        self.goals: list[tuple[str, bool | None, str]] = []
        self.notes: list[str] = []
        self.diagnose: set[str] = set()
        self.rss_huge = float("nan")  # kB: the runner's peak with the largest state
        self.small: tuple[list[Run], list[Run], list[Run]] | None = None
        self._store_env = {"KUBECONFIG": str(self.kubeconfig)}

    def close(self) -> None:
        self.api.stop()

    # -- environments -------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "KUBECONFIG": str(self.kubeconfig),
            "TMPDIR": str(self.tmp),
        }
        env["PATH"] = f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
        return env

    def out_dir(self, tag: str) -> Path:
        self.counter += 1
        return self.tmp / "runs" / f"{self.counter:04d}-{tag}"

    # -- runner -------------------------------------------------------------------------
    def runner_argv(self, world: World) -> list[str]:
        return [
            RUNNER,
            "run",
            STEP_NAME,
            "--steps-dir",
            str(world.steps),
            "--input",
            str(world.input),
            "--output",
            str(world.output),
            "--metadata",
            str(world.metadata),
            "--log-format",
            "json",
        ]

    def run_runner(self, world: World, tag: str) -> Run:
        world.reset()
        self.api.reset_counts()
        timed = run_timed(
            self.runner_argv(world), self.base_env(), world.root, self.out_dir(tag), sample_hwm=True
        )
        requests = self.api.requests()
        if timed.rc != 0:
            raise BenchError(f"`runner run` ({tag}) exited {timed.rc}:\n{tail(timed.stderr)}")
        return Run(timed, requests, runner_phases(timed))

    # -- seed -----------------------------------------------------------------------------
    def seed_env(self, world: World, cache: Path, times: Path) -> dict[str, str]:
        env = self.base_env()
        env.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            KUBECACHEDIR=str(cache),
            KRATIX_INPUT_DIR=str(world.input),
            TERRAFORM_DIR=str(world.terraform),
            SEED_TIMES=str(times),
            SEED_REPLACE_FLAGS=self.replace_flags,
        )
        return env

    def run_seed(self, world: World, tag: str, cache: Path | None = None) -> Run:
        """The seed script; `cache` None: a fresh kubectl cache, as in a new pod."""
        world.reset()
        out = self.out_dir(tag)
        fresh = cache is None
        cache = cache or (out / "kube-cache")
        times = out / "times"
        out.mkdir(parents=True, exist_ok=True)
        self.api.reset_counts()
        timed = run_timed(
            ["bash", str(SEED_SCRIPT)], self.seed_env(world, cache, times), world.root, out
        )
        requests = self.api.requests()
        if fresh:
            shutil.rmtree(cache, ignore_errors=True)
        if timed.rc != 0:
            raise BenchError(f"the seed script ({tag}) exited {timed.rc}:\n{tail(timed.stderr)}")
        return Run(timed, requests, seed_phases(timed, times))

    def seed_configmap(self, world: World, content: bytes) -> None:
        """Create the seed's ConfigMap as its first run would have (kubectl create --from-file)."""
        source = self.tmp / f"{world.name}.tfstate"
        source.write_bytes(content)
        env = self.base_env()
        env["KUBECACHEDIR"] = str(self.tmp / "setup-cache")
        result = subprocess.run(
            ["kubectl", "create", "configmap", world.state_name, f"--from-file=tfstate={source}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise BenchError(f"could not create the seed's ConfigMap: {result.stderr.strip()}")
        source.unlink()

    # -- the runner's store, in this process ---------------------------------------------------
    def store(self) -> Any:
        from runner.state.configmap_secret import ConfigMapStore
        from runner.state.kubeapi import Kube, load_client

        return ConfigMapStore(Kube(load_client(self._store_env)), "bench/in-process", 60)

    def ref(self, world_name: str) -> Any:
        from runner.state.base import StateRef

        return StateRef(STEP_NAME, f"{world_name}-state", "default", world_name, "default")

    def stored_text(self, name: str) -> bytes | None:
        """What a state holds now, read back through the runner's store."""
        store = self.store()
        try:
            loaded = store.load(self.ref(name.removesuffix("-state")))
        finally:
            store.close()
        return None if loaded is None else loaded.files.get("tfstate")

    def configmap(self, name: str) -> dict[str, Any] | None:
        from runner.state.kubeapi import Kube, load_client

        kube = Kube(load_client(self._store_env))
        try:
            return kube.get("configmaps", "default", name)
        finally:
            kube.close()

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def goal(self, name: str, ok: bool | None, figures: str) -> None:
        self.goals.append((name, ok, figures))


def runner_phases(timed: Timed) -> dict[str, float]:
    """Where a `runner run` spent its wall time, from its JSON log's timestamps (ms)."""
    events = {e.get("event"): e for e in log_events(timed.stderr) if e.get("event")}
    need = ("step-start", "command-start", "command-end", "step-end")
    if not all(k in events for k in need):
        return {}
    t = {k: log_time(events[k]) for k in need}
    end = timed.started + timed.wall
    return {
        "start-up (interpreter, imports, steps, request)": t["step-start"] - timed.started,
        OPEN_LOCK_RESTORE: t["command-start"] - t["step-start"],
        "command (as the runner timed it)": float(events["command-end"].get("duration", 0.0)),
        "save + unlock": t["step-end"] - t["command-end"],
        "exit: closing, interpreter shutdown": end - t["step-end"],
    }


def seed_phases(timed: Timed, times: Path) -> dict[str, float]:
    marks: dict[str, float] = {}
    for line in times.read_text().splitlines() if times.exists() else []:
        name, _, value = line.partition(" ")
        marks[name] = float(value)
    if set(marks) < {"start", "inputs", "restored", "applied", "saved"}:
        return {}
    return {
        "bash start-up": marks["start"] - timed.started,
        "yq x2": marks["inputs"] - marks["start"],
        "kubectl restore (get, get -o jsonpath)": marks["restored"] - marks["inputs"],
        "command": marks["applied"] - marks["restored"],
        "kubectl save (create --dry-run, replace --force)": marks["saved"] - marks["applied"],
        "exit": timed.started + timed.wall - marks["saved"],
    }


def tail(text: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def median_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    keys = phases[0].keys() if phases else []
    return {k: Series([p[k] for p in phases if k in p]).median for k in keys}


def request_summary(requests: list[tuple[str, str, int]]) -> list[str]:
    counts = collections.Counter(f"{m} {p} -> {s}" for m, p, s in requests)
    return [f"{n} x {what}" if n > 1 else what for what, n in counts.items()]


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
