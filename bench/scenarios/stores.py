"""9: the state stores side by side: saving and restoring 1, 10 and 30 MiB states in local,
configmap (the loopback API server) and s3 (a loopback moto server), plain and with
`state.encryption`, each in a fresh process (bench/store_io.py: MB/s and peak RSS); and the
start-up of a stamped `runner run` with the s3 store against the local store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from common import MIB, PYTHON, REPO, RUNNER, Series, mb, ms, ratio, run_timed
from harness import STEP_NAME, Bench, BenchError, make_world, progress, tail

STORE_IO = Path(__file__).resolve().parent.parent / "store_io.py"
SIZES = (1 * MIB, 10 * MIB, 30 * MIB)  # quick mode: the smallest only
KINDS = ("local", "configmap", "s3")
BUCKET = "bench-state"
ENCRYPTION_GOAL = 0.10  # encryption adds at most this to a save
S3_STARTUP_GOAL = 1.5  # a run on the s3 store starts within this of one on the local store

STARTUP_STEP = """\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata: {name: bench-state}
spec:
  inputs: {name: {query: .metadata.name}}
  workdir: ../terraform
  state:
    store: STORE
    BUCKETname: "${{ inputs.name }}-state"
    files: [{path: state.tfstate, key: tfstate}]
    lock: true
  run:
    - [bash, -c, 'echo "applied $$" >> state.tfstate']
"""


def stores(b: Bench) -> None:
    from tests.fakes.s3 import REGION, S3Server

    sizes = SIZES[:1] if b.quick or b.args.skip_big else SIZES
    rounds = 1 if b.quick else 3
    with S3Server() as s3:
        s3.create_bucket(BUCKET)
        s3_env = {
            "AWS_ENDPOINT_URL": s3.url,
            "AWS_ACCESS_KEY_ID": s3.user,
            "AWS_SECRET_ACCESS_KEY": s3.password,
            "AWS_REGION": REGION,
        }
        b.add(
            f"10. state stores: save and restore in a fresh process, median of {rounds}; "
            "plain | encrypted"
        )
        save_totals: dict[str, list[float]] = {k: [0.0, 0.0] for k in KINDS}
        for size in sizes:
            for kind in KINDS:
                plain = _store_io(b, kind, size, rounds, False, s3_env)
                encrypted = _store_io(b, kind, size, rounds, True, s3_env)
                save_totals[kind][0] += plain["save"]
                save_totals[kind][1] += encrypted["save"]
                _rows(b, kind, size, plain, encrypted)
        _encryption_goal(b, save_totals)
        _startup(b, s3_env)


def _store_io(
    b: Bench, kind: str, size: int, rounds: int, encrypted: bool, s3_env: dict[str, str]
) -> dict[str, float]:
    label = f"{size // MIB} MiB {kind}{' encrypted' if encrypted else ''}"
    progress(f"stores: {label}, fresh process, {rounds} round{'s' if rounds > 1 else ''}")
    location = {"local": str(b.tmp / "local-state"), "configmap": "-", "s3": f"//{BUCKET}/io"}
    argv = [PYTHON, str(STORE_IO), kind, location[kind], str(size), str(rounds)]
    if encrypted:
        argv.append("--encrypted")
    env = {**b.base_env(), **s3_env, "PYTHONPATH": str(REPO)}
    result = subprocess.run(argv, env=env, cwd=b.tmp, capture_output=True, text=True, timeout=600)
    try:
        figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        figures = {"error": f"exit {result.returncode}"}
    if result.returncode != 0 or "error" in figures:
        raise BenchError(f"store_io {label}: {figures.get('error')}\n{tail(result.stderr)}")
    return {
        "save": Series(figures["save"]).median,
        "load": Series(figures["load"]).median,
        "hwm_kb": figures["hwm_kb"],
        "base_kb": figures["base_kb"],
    }


def _rows(
    b: Bench, kind: str, size: int, plain: dict[str, float], encrypted: dict[str, float]
) -> None:
    mib = size / MIB

    def rate(seconds: float) -> str:
        return "-" if seconds <= 0 else f"{mib / seconds:.0f} MiB/s"

    label = f"{size // MIB} MiB {kind}"
    added = encrypted["save"] / plain["save"] - 1 if plain["save"] else float("nan")
    b.add(
        f"{label} save",
        f"{ms(plain['save'])} | {ms(encrypted['save'])}",
        "",
        "",
        f"{rate(plain['save'])} | {rate(encrypted['save'])}; encryption {added:+.0%}",
    )
    b.add(
        f"{label} restore",
        f"{ms(plain['load'])} | {ms(encrypted['load'])}",
        "",
        "",
        f"{rate(plain['load'])} | {rate(encrypted['load'])}",
    )
    b.add(
        f"{label} peak RSS",
        f"{mb(plain['hwm_kb'])} | {mb(encrypted['hwm_kb'])}",
        "",
        "",
        f"of which the payload and interpreter {mb(plain['base_kb'])}",
    )


def _encryption_goal(b: Bench, totals: dict[str, list[float]]) -> None:
    """Judged on the stores that compress what they keep (configmap, s3): there encryption
    moves the compression before it and adds one AES pass. The local store writes files as
    they are, so its AES pass is a share of a bare file write: reported, not judged."""
    added = {k: (enc / plain - 1 if plain else float("nan")) for k, (plain, enc) in totals.items()}
    judged = [added[k] for k in ("configmap", "s3")]
    ok = all(a == a and a <= ENCRYPTION_GOAL for a in judged)
    plain_local, enc_local = totals["local"]
    b.goal(
        f"encryption adds under {ENCRYPTION_GOAL:.0%} to a save",
        ok,
        f"configmap {added['configmap']:+.0%}, s3 {added['s3']:+.0%} (saves summed over sizes); "
        f"not judged: local {added['local']:+.0%} "
        f"({ms(plain_local)} -> {ms(enc_local)}: an AES pass over a bare file write)",
    )


def _startup(b: Bench, s3_env: dict[str, str]) -> None:
    """A stamped `runner run` of a one-command step on a small state: s3 against local."""
    worlds = {}
    for kind in ("local", "s3"):
        world = make_world(b.tmp, f"startup-{kind}")
        bucket = f"bucket: {BUCKET}\n    " if kind == "s3" else ""
        step = STARTUP_STEP.replace("STORE", kind).replace("BUCKET", bucket)
        (world.steps / f"{STEP_NAME}.yaml").write_text(step)
        stamp = subprocess.run(
            [RUNNER, "validate", "--stamp", str(world.steps)], capture_output=True, text=True
        )
        if stamp.returncode != 0:
            raise BenchError(f"could not stamp the {kind} start-up step: {stamp.stderr.strip()}")
        worlds[kind] = world
    walls: dict[str, Series] = {"local": Series(), "s3": Series()}
    rss: dict[str, Series] = {"local": Series(), "s3": Series()}
    progress(f"stores: stamped runner run, s3 and local alternately x{b.runs}")
    for _ in range(b.runs + 1):
        for kind, world in worlds.items():
            env = {**b.base_env(), **(s3_env if kind == "s3" else {})}
            env["RUNNER_STATE_DIR"] = str(world.root / "state")
            world.reset()
            timed = run_timed(
                b.runner_argv(world), env, world.root, b.out_dir(f"startup-{kind}"), True
            )
            if timed.rc != 0:
                raise BenchError(f"`runner run` on the {kind} store exited {timed.rc}:\n"
                                 f"{tail(timed.stderr)}")  # fmt: skip
            walls[kind].add(timed.wall)
            rss[kind].add(timed.hwm_kb)
    for kind in worlds:  # the first runs warmed the page cache: not counted
        walls[kind] = Series(walls[kind].values[1:])
        rss[kind] = Series(rss[kind].values[1:])
    local, s3 = walls["local"].median, walls["s3"].median
    b.add(f"10b. stamped runner run on the s3 and local stores, median of {b.runs} (min-max s)")
    b.add("runner run, local store", ms(local), "", "", walls["local"].spread)
    b.add("runner run, s3 store", ms(s3), "", ratio(s3, local), walls["s3"].spread + " (vs local)")
    b.add(
        "  peak RSS local | s3", f"{mb(rss['local'].median)} | {mb(rss['s3'].median)}", "", "", ""
    )
    b.goal(
        f"s3 store start-up within {S3_STARTUP_GOAL}x of local",
        s3 <= S3_STARTUP_GOAL * local,
        f"{ms(s3)} vs {ms(local)} ({ratio(s3, local)}), stamped `runner run` of one small-state step",
    )
