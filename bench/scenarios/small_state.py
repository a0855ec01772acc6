"""1-3: a small state-backed step, `runner run` against the seed script, alternating: wall
time, API requests per run, the runner's peak RSS."""

from __future__ import annotations

import collections
from collections.abc import Callable

from common import Series, mb, ms, ratio, run_timed
from harness import (
    RSS_GOAL_MB,
    SMALL_STATE,
    Bench,
    BenchError,
    Run,
    make_world,
    progress,
    request_summary,
)


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
            b.notes.extend(f"        {line}" for line in request_summary(run.requests))

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
