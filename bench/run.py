#!/usr/bin/env python3
"""The runner against the Kratix tutorial's own script, side by side, in one run.

    .venv/bin/python bench/run.py [--quick] [--verbose] [--runs N] [--keep]

Starts the loopback Kubernetes API server (tests/kubeapi), then measures, alternating the two:
a state-backed step through `runner run` against bench/seed_script.sh (wall time, API requests,
the runner's peak RSS), `runner validate` against check-jsonschema (bench/validate.py), and
saving and restoring 0.9, 10 and 30 MiB states. Prints a table and the goals; where a goal
fails, where the runner's time or memory goes. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import (  # noqa: E402
    MIB,
    PYTHON,
    REPO,
    RUNNER,
    VENV_BIN,
    KubeAPI,
    Series,
    Timed,
    end_children,
    fake_tfstate,
    import_memory,
    import_times,
    install_termination_handler,
    log_events,
    log_time,
    mb,
    ms,
    profile_run,
    ratio,
    run_timed,
    scratch_dir,
    shutdown_cost,
    table,
)

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
HUGE = (10 * MIB, 30 * MIB)
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
    subprocess.run([RUNNER, "validate", "--stamp", str(world.steps)], check=True, capture_output=True)
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
        self.runs = args.runs or (3 if args.quick else 7)
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
        self.rss_huge = float("nan")  # kB: the runner's peak with a 30 MiB state
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
            raise BenchError(f"`runner run` ({tag}) exited {timed.rc}:\n{_tail(timed.stderr)}")
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
            raise BenchError(f"the seed script ({tag}) exited {timed.rc}:\n{_tail(timed.stderr)}")
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
        from runner.state.kube import Kube, load_client
        from runner.state.kubernetes import ConfigMapStore

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
        from runner.state.kube import Kube, load_client

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


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def _median_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    keys = phases[0].keys() if phases else []
    return {k: Series([p[k] for p in phases if k in p]).median for k in keys}


def _request_summary(requests: list[tuple[str, str, int]]) -> list[str]:
    counts = collections.Counter(f"{m} {p} -> {s}" for m, p, s in requests)
    return [f"{n} x {what}" if n > 1 else what for what, n in counts.items()]


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# 1-3: a small state-backed step


def small_state(b: Bench) -> None:
    runner_world = make_world(b.tmp, "runner-app")
    seed_world = make_world(b.tmp, "seed-app")
    warm_cache = b.tmp / "warm-kube-cache"
    # Steady state for both: the state object exists (the runner's also its Lease), and one
    # untimed run of each warms the page cache and writes the runner's bytecode.
    b.seed_configmap(seed_world, SMALL_STATE)
    b.run_runner(runner_world, "warm-up")
    b.run_runner(runner_world, "warm-up")
    b.run_seed(seed_world, "warm-up", cache=warm_cache)
    yq_argv = ["yq", "-r", ".metadata.name", str(seed_world.input / "object.yaml")]

    runner_runs: list[Run] = []
    cold_runs: list[Run] = []
    warm_runs: list[Run] = []
    yq = Series()
    progress(
        f"small state: {b.runs} rounds of runner / seed (fresh kubectl cache) / seed (warm) / yq"
    )
    for i in range(b.runs):
        order: list[Callable[[], None]] = [
            lambda: runner_runs.append(b.run_runner(runner_world, "runner")),
            lambda: cold_runs.append(b.run_seed(seed_world, "seed-cold")),
            lambda: warm_runs.append(b.run_seed(seed_world, "seed-warm", cache=warm_cache)),
            lambda: yq.add(run_timed(yq_argv, b.base_env(), b.tmp, b.out_dir("yq")).wall),
        ]
        for action in order if i % 2 == 0 else reversed(order):
            action()

    # Both really kept their state: one line per run (warm-ups included) on top of the seed.
    for world, expected in ((runner_world, 2 + b.runs), (seed_world, 1 + 2 * b.runs)):
        text = b.stored_text(world.state_name) or b""
        if text.count(b"applied ") != expected:
            raise BenchError(
                f"{world.state_name} holds {text.count(b'applied ')} runs' lines, "
                f"expected {expected}: a state was not restored or not saved"
            )

    wall_r = Series([r.timed.wall for r in runner_runs])
    wall_c = Series([r.timed.wall for r in cold_runs])
    wall_w = Series([r.timed.wall for r in warm_runs])
    seed_yq = Series([r.phases.get("yq x2", float("nan")) for r in cold_runs])
    wall_c_noyq = Series([r.timed.wall - r.phases.get("yq x2", 0.0) for r in cold_runs])
    wall_w_noyq = Series([r.timed.wall - r.phases.get("yq x2", 0.0) for r in warm_runs])
    n = b.runs
    b.add(f"1. one state-backed step, small state: wall time, median of {n} (min-max s)")
    b.add("runner run (ConfigMap, Lease lock)", ms(wall_r.median), "", "", wall_r.spread)
    b.add(
        "seed script, fresh kubectl cache",
        "",
        ms(wall_c.median),
        ratio(wall_r.median, wall_c.median),
        f"{wall_c.spread}; a new pod's case",
    )
    b.add(
        "  less its 2 yq calls",
        "",
        ms(wall_c_noyq.median),
        ratio(wall_r.median, wall_c_noyq.median),
        f"yq x2 took {ms(seed_yq.median)} in the script",
    )
    b.add(
        "seed script, warm kubectl cache",
        "",
        ms(wall_w.median),
        ratio(wall_r.median, wall_w.median),
        wall_w.spread,
    )
    b.add(
        "  less its 2 yq calls",
        "",
        ms(wall_w_noyq.median),
        ratio(wall_r.median, wall_w_noyq.median),
        "",
    )
    b.add("yq alone, one call (Debian's Python yq)", "", ms(yq.median), "", yq.spread)
    cpu_r = Series([r.timed.cpu for r in runner_runs])
    cpu_c = Series([r.timed.cpu for r in cold_runs])
    b.add(
        "CPU time, user+sys incl. children",
        ms(cpu_r.median),
        ms(cpu_c.median),
        ratio(cpu_r.median, cpu_c.median),
        "seed: fresh cache",
    )

    req_r = Series([len(r.requests) for r in runner_runs])
    req_c = Series([len(r.requests) for r in cold_runs])
    req_w = Series([len(r.requests) for r in warm_runs])
    b.add("2. API requests per run, counted at the server")
    b.add(
        "requests, fresh kubectl cache",
        f"{req_r.median:.0f}",
        f"{req_c.median:.0f}",
        ratio(req_r.median, req_c.median),
        "what they are: below the table",
    )
    b.add(
        "requests, warm kubectl cache",
        "",
        f"{req_w.median:.0f}",
        ratio(req_r.median, req_w.median),
        "",
    )
    b.notes.append("API requests of one run (-v: by method and path):")
    for label, run in (
        ("runner run", runner_runs[-1]),
        ("seed, fresh cache", cold_runs[-1]),
        ("seed, warm cache", warm_runs[-1]),
    ):
        b.notes.append(
            f"    {label + ':':19} {len(run.requests):2}  {_request_kinds(run.requests)}"
        )
        if b.args.verbose:
            b.notes.extend(f"        {line}" for line in _request_summary(run.requests))

    rss = Series([r.timed.maxrss_kb for r in runner_runs])
    hwm = Series([r.timed.hwm_kb for r in runner_runs])
    b.add("3. peak RSS of the runner process, median")
    b.add(
        "ru_maxrss (wait4) over the whole run", mb(rss.median), "", "", f"goal <= {RSS_GOAL_MB} MB"
    )
    b.add(
        "VmHWM sampled from /proc every 10 ms", mb(hwm.median), "", "", "the runner process alone"
    )

    b.small = (runner_runs, cold_runs, warm_runs)
    strict = wall_c_noyq.median
    b.goal(
        "runner wall time <= half the seed's",
        wall_r.median <= strict / 2,
        f"runner {ms(wall_r.median)} vs seed {ms(strict)} without Debian's yq "
        f"({ratio(wall_r.median, strict)}; {ms(wall_c.median)} as measured: "
        f"{ratio(wall_r.median, wall_c.median)}); fresh kubectl cache",
    )
    b.goal(
        "API requests <= the seed's",
        req_r.median <= req_c.median,
        f"runner {req_r.median:.0f}; seed {req_c.median:.0f} (fresh cache), {req_w.median:.0f} (warm)",
    )
    b.goal(
        f"peak RSS <= {RSS_GOAL_MB} MB",
        rss.median / 1024 <= RSS_GOAL_MB,
        f"runner {mb(rss.median)} (ru_maxrss), {mb(hwm.median)} (sampled VmHWM)",
    )
    if wall_r.median > strict / 2:
        b.diagnose.add("time")
    if rss.median / 1024 > RSS_GOAL_MB:
        b.diagnose.add("memory")


def _request_kinds(requests: list[tuple[str, str, int]]) -> str:
    """`8 discovery, GET lease, 2x PUT cm ...` in the order first seen."""

    def kind(method: str, path: str) -> str:
        if "/namespaces/" not in path:
            return "discovery"
        return f"{method} {'lease' if '/leases' in path else 'configmap'}"

    counts = collections.Counter(kind(m, p) for m, p, _ in requests)
    return ", ".join(f"{n}x {what}" if n > 1 else what for what, n in counts.items())


# ---------------------------------------------------------------------------------------------
# 4: validate


def validate(b: Bench) -> None:
    """bench/validate.py (someone else's) measures `runner validate` on 1,000 step files against
    check-jsonschema; this only runs it and folds its figures into the table and the goals."""
    script = BENCH / "validate.py"
    b.add("4. runner validate on 1,000 step files vs check-jsonschema (bench/validate.py)")
    if not script.exists():
        b.add(
            "bench/validate.py is not there yet: skipped",
            "-",
            "-",
            "",
            "hook: validate() in run.py",
        )
        b.goal(
            "validate no slower than check-jsonschema",
            None,
            "not measured: bench/validate.py missing",
        )
        return
    progress("validate: running bench/validate.py")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    options = [*(["--quick"] if b.args.quick else []), "--json"]
    while True:
        timed = run_timed(
            [PYTHON, str(script), *options], env, REPO, b.out_dir("validate"), timeout=150
        )
        refused = re.search(r"unrecognized arguments: (.*)", timed.stderr)
        if timed.rc != 2 or not refused or not options:
            break
        # An older or newer validate.py without these options: drop what it refused, try again.
        options = [o for o in options if o not in refused.group(1).split()]
    figures = _validate_figures(timed.stdout)
    if timed.rc != 0 or figures is None:
        b.add("bench/validate.py: no JSON figures", "-", "-", "", f"exit {timed.rc}; output below")
        b.notes.append("bench/validate.py output:\n" + _tail(timed.stdout + timed.stderr, 30))
        b.goal(
            "validate no slower than check-jsonschema",
            None,
            f"bench/validate.py exited {timed.rc} without figures (its output is under notes)",
        )
        return
    runner_s, check_s, files = figures
    b.add(
        f"validate {files} files (median)",
        ms(runner_s),
        ms(check_s),
        ratio(runner_s, check_s),
        "seed column: check-jsonschema",
    )
    b.goal(
        "validate no slower than check-jsonschema",
        runner_s <= check_s,
        f"runner validate {ms(runner_s)}; check-jsonschema {ms(check_s)} ({files} files)",
    )


def _validate_figures(stdout: str) -> tuple[float, float, int] | None:
    """(runner seconds, check-jsonschema seconds, files) from validate.py's JSON line: the last
    line that parses as an object, with any key naming runner and check-jsonschema seconds."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        flat = _flatten(doc)
        runner = _pick(flat, ("runner",), ("check",))
        check = _pick(flat, ("check",), ())
        files = next(
            (int(v) for k, v in flat.items() if k.endswith("files") and isinstance(v, int)), 1000
        )
        if runner is not None and check is not None:
            return runner, check, files
    return None


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}".lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _pick(flat: dict[str, Any], want: tuple[str, ...], avoid: tuple[str, ...]) -> float | None:
    for key, value in flat.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if (
            all(w in key for w in want)
            and not any(a in key for a in avoid)
            and any(u in key for u in ("median", "seconds", "_s", "ms", "time", "wall"))
        ):
            return float(value) / (1000.0 if key.endswith("ms") else 1.0)
    return None


# ---------------------------------------------------------------------------------------------
# 5: big states


def big_state(b: Bench) -> None:
    runs = b.runs
    payload = fake_tfstate(BIG, seed=9)
    progress(f"0.9 MiB state: in-process store x{runs}, then runner run / seed script x{runs}")

    # In process: the runner's ConfigMapStore, load then save, as a run does.
    store = b.store()
    ref = b.ref("inproc-big")
    store.save(ref, {"tfstate": payload})
    load_s, save_s, both = Series(), Series(), Series()
    current = payload
    requests: list[int] = []
    try:
        for i in range(runs):
            b.api.reset_counts()
            t0 = time.perf_counter()
            loaded = store.load(ref)
            t1 = time.perf_counter()
            if loaded is None or loaded.files["tfstate"] != current:
                raise BenchError("the in-process 0.9 MiB state did not read back byte for byte")
            current = current + f"applied {i}\n".encode()
            store.save(ref, {"tfstate": current}, expected=loaded.version)
            t2 = time.perf_counter()
            requests.append(len(b.api.requests()))
            load_s.add(t1 - t0)
            save_s.add(t2 - t1)
            both.add(t2 - t0)
    finally:
        store.close()

    # End to end: runner run and the seed script, each with a 0.9 MiB state already stored.
    runner_world = make_world(b.tmp, "runner-big")
    seed_world = make_world(b.tmp, "seed-big")
    warm = b.store()
    try:
        warm.save(b.ref(runner_world.name), {"tfstate": payload})
    finally:
        warm.close()
    b.seed_configmap(seed_world, payload)
    runner_runs: list[Run] = []
    seed_runs: list[Run] = []
    for i in range(runs):
        order: list[Callable[[], None]] = [
            lambda: runner_runs.append(b.run_runner(runner_world, "runner-big")),
            lambda: seed_runs.append(b.run_seed(seed_world, "seed-big")),
        ]
        for action in order if i % 2 == 0 else reversed(order):
            action()
    for world in (runner_world, seed_world):
        text = b.stored_text(world.state_name) or b""
        if not text.startswith(payload) or text.count(b"\napplied ") != runs:
            raise BenchError(f"{world.state_name}: the 0.9 MiB state was not kept across runs")

    seed_kubectl = Series(
        [
            r.phases["kubectl restore (get, get -o jsonpath)"]
            + r.phases["kubectl save (create --dry-run, replace --force)"]
            for r in seed_runs
        ]
    )
    seed_restore = Series([r.phases["kubectl restore (get, get -o jsonpath)"] for r in seed_runs])
    seed_save = Series(
        [r.phases["kubectl save (create --dry-run, replace --force)"] for r in seed_runs]
    )
    run_restore = Series([r.phases.get(OPEN_LOCK_RESTORE, float("nan")) for r in runner_runs])
    run_save = Series([r.phases.get("save + unlock", float("nan")) for r in runner_runs])
    wall_r = Series([r.timed.wall for r in runner_runs])
    wall_s = Series([r.timed.wall for r in seed_runs])
    wall_s_noyq = Series([r.timed.wall - r.phases["yq x2"] for r in seed_runs])
    # VmHWM, not ru_maxrss: after the bench's in-process rounds, vfork makes the child's
    # ru_maxrss report the bench's own peak.
    rss_r = Series([r.timed.hwm_kb for r in runner_runs])

    b.add(f"5. saving and restoring state, median of {runs}; seed: fresh kubectl cache")
    b.add(
        "0.9 MiB restore: in process | 2x kubectl get",
        ms(load_s.median),
        ms(seed_restore.median),
        ratio(load_s.median, seed_restore.median),
        f"runner {BIG / MIB / load_s.median:.0f} MiB/s",
    )
    b.add(
        "0.9 MiB save: in process | create+replace",
        ms(save_s.median),
        ms(seed_save.median),
        ratio(save_s.median, seed_save.median),
        f"runner {BIG / MIB / save_s.median:.0f} MiB/s",
    )
    b.add(
        "0.9 MiB restore + save",
        ms(both.median),
        ms(seed_kubectl.median),
        ratio(both.median, seed_kubectl.median),
        f"runner: {requests[-1]} requests (no lock)",
    )
    b.add(
        "0.9 MiB end to end: runner run | script",
        ms(wall_r.median),
        ms(wall_s.median),
        ratio(wall_r.median, wall_s.median),
        f"seed less yq: {ms(wall_s_noyq.median)}",
    )
    b.add(
        "  store+lock+restore | kubectl restore",
        ms(run_restore.median),
        ms(seed_restore.median),
        ratio(run_restore.median, seed_restore.median),
        "runner: from its log's timestamps",
    )
    b.add(
        "  save+unlock | kubectl save",
        ms(run_save.median),
        ms(seed_save.median),
        ratio(run_save.median, seed_save.median),
        "",
    )
    b.add("  runner peak RSS (VmHWM)", mb(rss_r.median), "", "", "")
    b.goal(
        "0.9 MiB save+restore <= half the seed's",
        both.median <= seed_kubectl.median / 2,
        f"in process {ms(both.median)} vs the seed's kubectl path {ms(seed_kubectl.median)} "
        f"({ratio(both.median, seed_kubectl.median)}); end to end runner run {ms(wall_r.median)} vs "
        f"seed script {ms(wall_s_noyq.median)} without yq ({ratio(wall_r.median, wall_s_noyq.median)})",
    )
    if both.median > seed_kubectl.median / 2:
        b.diagnose.add("big")
    huge_states(b)


def huge_states(b: Bench) -> None:
    iterations = 1 if b.args.quick else 3
    handled = True
    figures = []
    for size in HUGE:
        label = f"{size // MIB} MiB"
        progress(f"{label} state: in-process store x{iterations}, seed's kubectl save")
        payload = fake_tfstate(size, seed=size)
        name = f"runner-huge-{size // MIB}"
        store = b.store()
        ref = b.ref(name)
        load_s, save_s = Series(), Series()
        load_req = save_req = 0
        current = payload
        try:
            store.save(ref, {"tfstate": payload})  # untimed: the first save creates the chunks
            for i in range(iterations):
                b.api.reset_counts()
                t0 = time.perf_counter()
                loaded = store.load(ref)
                t1 = time.perf_counter()
                load_req = len(b.api.requests())
                ok = loaded is not None and loaded.files["tfstate"] == current
                version = loaded.version if loaded is not None else None
                del loaded
                handled = handled and ok
                current = current + f"applied {i}\n".encode()
                b.api.reset_counts()
                t2 = time.perf_counter()
                store.save(ref, {"tfstate": current}, expected=version)
                t3 = time.perf_counter()
                save_req = len(b.api.requests())
                load_s.add(t1 - t0)
                save_s.add(t3 - t2)
            final = store.load(ref)
            handled = handled and final is not None and final.files["tfstate"] == current
            del final
        finally:
            store.close()
        main = b.configmap(f"{name}-state") or {}
        manifest = json.loads((main.get("data") or {}).get("manifest", "{}") or "{}")
        compressed = manifest.get("size")
        chunk_note = (
            f"{manifest.get('chunks')} chunks, gzip {size / compressed:.1f}:1"
            if compressed
            else "not chunked?"
        )
        seed_short, seed_detail = seed_save_huge(b, size, payload)
        b.add(
            f"{label} restore, in process",
            ms(load_s.median),
            "-",
            "",
            f"{size / MIB / load_s.median:.0f} MiB/s, {load_req} requests",
        )
        b.add(
            f"{label} save, in process",
            ms(save_s.median),
            "-",
            "",
            f"{size / MIB / save_s.median:.0f} MiB/s, {save_req} requests, {chunk_note}",
        )
        b.add(
            "  seed's create + replace --force",
            "",
            "FAILS" if seed_short else "ok",
            "",
            seed_short or "the seed stored it?!",
        )
        b.notes.append(f"seed at {label}: {seed_detail}")
        figures.append(
            f"{label}: save {size / MIB / save_s.median:.0f} MiB/s, restore "
            f"{size / MIB / load_s.median:.0f} MiB/s"
        )
        if size == HUGE[-1]:
            e2e = huge_end_to_end(b, name, current, label)
            handled = handled and e2e is not None
            if e2e is not None:
                figures.append(f"runner run end to end ok, peak RSS {mb(b.rss_huge)}")
    b.goal(
        "30 MiB handled",
        handled,
        ("byte-exact round trips" if handled else "NOT byte-exact")
        + "; "
        + "; ".join(figures)
        + "; the seed's approach fails (notes)",
    )


def huge_end_to_end(b: Bench, name: str, stored: bytes, label: str) -> Run | None:
    """`runner run` on a world whose stored state is the in-process section's last one: each
    run restores it, appends a line and saves it (a new chunk generation)."""
    world = make_world(b.tmp, name)
    count = 1 if b.args.quick else 3
    progress(f"{label} state: runner run end to end x{count}")
    runs = [b.run_runner(world, "runner-huge") for _ in range(count)]
    text = b.stored_text(world.state_name)
    ok = (
        text is not None
        and text.startswith(stored)
        and text.count(b"\napplied ") == stored.count(b"\napplied ") + count
    )
    del text
    wall = Series([r.timed.wall for r in runs])
    rss = Series([r.timed.hwm_kb for r in runs])  # VmHWM: see the 0.9 MiB rows
    restore = Series([r.phases.get(OPEN_LOCK_RESTORE, float("nan")) for r in runs])
    save = Series([r.phases.get("save + unlock", float("nan")) for r in runs])
    b.add(
        f"{label} end to end: runner run",
        ms(wall.median),
        "",
        "",
        f"restore {ms(restore.median)}, save {ms(save.median)}" + ("" if ok else "; STATE WRONG"),
    )
    b.add("  runner peak RSS (VmHWM)", mb(rss.median), "", "", "")
    b.rss_huge = rss.median
    return runs[-1] if ok else None


def seed_save_huge(b: Bench, size: int, payload: bytes) -> tuple[str, str]:
    """The seed script's last two lines with a state that outgrew a ConfigMap. Its ConfigMap
    exists beforehand (the state grew since the last run): `replace --force` deletes it first.
    (a short verdict, empty if it worked; the whole story)"""
    world = make_world(b.tmp, f"seed-huge-{size // MIB}")
    b.seed_configmap(world, fake_tfstate(BIG, seed=3))
    (world.terraform / "state.tfstate").write_bytes(payload)
    env = b.seed_env(world, world.root / "kube-cache", world.root / "times")
    create = run_timed(
        [
            "kubectl",
            "create",
            "configmap",
            world.state_name,
            "--from-file=tfstate=state.tfstate",
            "--dry-run=client",
            "--output=yaml",
        ],
        env,
        world.terraform,
        b.out_dir("seed-huge-create"),
    )
    if create.rc != 0:
        return (
            "create --dry-run failed",
            f"kubectl create --dry-run failed: {create.stderr.strip()[:300]}",
        )
    (world.terraform / "configmap.yaml").write_text(create.stdout)
    argv = ["kubectl", "replace", "--filename", "configmap.yaml", "--force"]
    if b.replace_flags:
        argv.append(b.replace_flags)
    replace = run_timed(argv, env, world.terraform, b.out_dir("seed-huge-replace"))
    after = b.configmap(world.state_name)
    error = re.sub(r"\s+", " ", replace.stderr.strip())
    status = re.search(r"Error from server \((\w+)\)", error)
    gone = after is None
    lost = (
        "the ConfigMap is now GONE: --force deleted it, then the create was refused"
        if gone
        else "the old ConfigMap is still there"
    )
    if replace.rc == 0:
        return "", f"kubectl replace --force exited 0 ({lost})"
    short = f"{status.group(1) if status else 'exit ' + str(replace.rc)}" + (
        "; old state deleted" if gone else ""
    )
    return short, f"`kubectl replace --force` exited {replace.rc}: {error[:300]} -- {lost}"


# ---------------------------------------------------------------------------------------------
# where the time goes


def diagnostics(b: Bench) -> list[str]:
    """Where the runner's time and memory go: printed when a goal fails (or with --explain)."""
    if b.small is None or not (b.diagnose or b.args.explain):
        return []
    runner_runs, cold_runs, _ = b.small
    progress("where the time goes: phases, shutdown, importtime, cProfile")
    lines = [
        "A `runner run` of the small-state step, medians, from its JSON log's timestamps (ms):"
    ]
    lines += [
        f"    {ms(v):>8}  {k}"
        for k, v in _median_phases([r.phases for r in runner_runs if r.phases]).items()
    ]
    lines.append("  the seed script's, fresh kubectl cache (bash's $EPOCHREALTIME):")
    lines += [
        f"    {ms(v):>8}  {k}"
        for k, v in _median_phases([r.phases for r in cold_runs if r.phases]).items()
    ]

    world = make_world(b.tmp, "diag-app")
    b.run_runner(world, "diag-warm-up")
    env = b.base_env()
    args = b.runner_argv(world)[1:]
    bare = Series(
        [run_timed([PYTHON, "-c", "pass"], env, b.tmp, b.out_dir("py")).wall for _ in range(3)]
    )
    raw = Series(
        [run_timed(COMMAND, env, world.terraform, b.out_dir("bash")).wall for _ in range(3)]
    )
    normal, fast = shutdown_cost(args, env, world.root, b.out_dir("exit"), world.reset)
    lines.append("  for scale:")
    lines.append(
        f"    {ms(bare.median):>8}  `python -c pass` (this venv's interpreter, site included)"
    )
    lines.append(
        f"    {ms(raw.median):>8}  the command itself, started and reaped by a bare subprocess"
    )
    lines.append(
        f"    {ms(normal):>8}  from runner.cli.main() returning to the process reaped; "
        f"{ms(fast)} with os._exit (interpreter shutdown costs the difference)"
    )
    lines += import_times([RUNNER, *args], env, world.root, b.out_dir("importtime"))
    world.reset()
    lines += profile_run([RUNNER, *args], env, world.root, b.out_dir("cprofile"))
    if "memory" in b.diagnose or b.args.explain:
        lines.append("Peak RSS (VmHWM) of a python that only imports what `runner run` imports:")
        lines += import_memory(MEMORY_STAGES, REPO)
    return lines


MEMORY_STAGES = [
    ("python -c pass", ""),
    ("import runner.cli", "import runner.cli"),
    (
        "+ runner.commands.run, runner.engine",
        "import runner.cli, runner.commands.run, runner.engine",
    ),
    (
        "+ runner.state.kubernetes",
        "import runner.cli, runner.commands.run, runner.engine, runner.state.kubernetes",
    ),
    (
        "+ the kubernetes client, as the store loads it",
        "import runner.cli, runner.commands.run, runner.engine, runner.state.kubernetes\n"
        "from runner.state.kubeimport import client_modules\nclient_modules()",
    ),
]


# ---------------------------------------------------------------------------------------------


def header(b: Bench) -> str:
    kubectl = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    try:
        kubectl_version = json.loads(kubectl.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        kubectl_version = "?"
    yq_path = shutil.which("yq")
    yq_kind = "not found"
    if yq_path:
        with open(yq_path, "rb") as head:
            python = b"python" in head.read(200)
        yq_kind = "a Python jq wrapper, as Debian ships it" if python else "a native binary"
    mode = "--quick, " if b.args.quick else ""
    openapi = (
        ""
        if b.openapi
        else "\nThe server serves no OpenAPI, so the seed's `kubectl replace` runs with "
        "--validate=false (against a real cluster kubectl also GETs the OpenAPI documents)."
    ) + (
        "\nThe runner's steps folder is stamped by `runner validate --stamp`, as the image build does."
    )
    return (
        f"kratix-step-runner bench: {mode}{b.runs} runs per figure, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, kubectl {kubectl_version}, yq {yq_path} ({yq_kind})\n"
        f"API server: loopback tests.kubeapi at {b.api.url}. The seed's kubectl gets a fresh "
        "--cache-dir per run\n(KUBECACHEDIR): discovery is not cached, as in a new pod." + openapi
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 7")
    parser.add_argument("--runs", type=int, help="runs per figure (overrides --quick)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each run's API requests")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs of every run)"
    )
    parser.add_argument("--skip-big", action="store_true", help="skip section 5 (big states)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print where the runner's time and memory go even when every goal passes",
    )
    args = parser.parse_args(argv)
    for tool in ("kubectl", "yq", "bash"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not on PATH", file=sys.stderr)
            return 2
    install_termination_handler()
    started = time.monotonic()
    bench: Bench | None = None
    try:
        with scratch_dir(args.keep) as tmp:
            try:
                bench = Bench(args, tmp)
                small_state(bench)
                validate(bench)
                if not args.skip_big:
                    big_state(bench)
                diagnosis = diagnostics(bench)
            finally:
                if bench is not None:
                    bench.close()
                end_children()
    except KeyboardInterrupt:
        print("\nbench: interrupted; server stopped and scratch folder removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except Exception:  # a bug here, or the API server died: say which, with the traceback
        dead = bench is not None and bench.api.proc.poll() not in (None, 0, -15)
        print(
            "bench: failed" + (" (the loopback API server had stopped)" if dead else ""),
            file=sys.stderr,
        )
        raise
    assert bench is not None
    print(header(bench))
    print()
    print(table(bench.rows, ["measure", "runner", "seed", "runner/seed", "notes"]))
    if bench.notes:
        print()
        print("\n".join(bench.notes))
    print()
    print("goals")
    for name, ok, figures in bench.goals:
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {verdict}  {name}: {figures}")
    if bench.rss_huge == bench.rss_huge:  # not NaN
        print(
            f"  note  not a goal: with a 30 MiB state `runner run` peaks at {mb(bench.rss_huge)} RSS "
            "(runner/state/codec.py plans for a 256 MiB pod shared with terraform)"
        )
    if diagnosis:
        print()
        print(
            "where the time goes"
            + ("" if not bench.diagnose else " (printed because a goal failed)")
        )
        print("\n".join(diagnosis))
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
