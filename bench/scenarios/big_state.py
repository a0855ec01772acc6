"""5, first part: a 0.9 MiB state (about the largest the seed's one ConfigMap holds) saved and
restored by the runner's store in process, against the seed's kubectl calls; then end to end."""

from __future__ import annotations

import time
from collections.abc import Callable

from common import MIB, Series, fake_tfstate, mb, ms, ratio
from harness import BIG, OPEN_LOCK_RESTORE, Bench, BenchError, Run, make_world, progress


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
