"""Where the runner's time and memory go: its phases, interpreter start-up and shutdown,
importtime, a cProfile, and the memory of its imports. Printed when a goal fails (or with
--explain)."""

from __future__ import annotations

from common import (
    PYTHON,
    REPO,
    RUNNER,
    Series,
    import_memory,
    import_times,
    ms,
    profile_run,
    run_timed,
    shutdown_cost,
)
from harness import COMMAND, Bench, make_world, median_phases, progress


def diagnostics(b: Bench) -> list[str]:
    """Where the runner's time and memory go: printed when a goal fails (or with --explain)."""
    if b.small is None or not (b.diagnose or b.explain):
        return []
    runner_runs, cold_runs, _ = b.small
    progress("where the time goes: phases, shutdown, importtime, cProfile")
    lines = [
        "A `runner run` of the small-state step, medians, from its JSON log's timestamps (ms):"
    ]
    lines += [
        f"    {ms(v):>8}  {k}"
        for k, v in median_phases([r.phases for r in runner_runs if r.phases]).items()
    ]
    lines.append("  the seed script's, fresh kubectl cache (bash's $EPOCHREALTIME):")
    lines += [
        f"    {ms(v):>8}  {k}"
        for k, v in median_phases([r.phases for r in cold_runs if r.phases]).items()
    ]

    world = make_world(b.tmp, "diag-app")
    b.run_runner(world, "diag-warm-up")
    env = b.base_env()
    args = b.runner_argv(world)[1:]
    bare = Series(
        [
            run_timed([PYTHON, "-c", "pass"], env, b.tmp, b.out_dir("py")).wall
            for _ in range(b.scale_runs)
        ]
    )
    raw = Series(
        [
            run_timed(COMMAND, env, world.terraform, b.out_dir("bash")).wall
            for _ in range(b.scale_runs)
        ]
    )
    normal, fast = shutdown_cost(
        args, env, world.root, b.out_dir("exit"), world.reset, runs=b.scale_runs
    )
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
    lines += profile_run(args, env, world.root, b.out_dir("cprofile"))
    if "memory" in b.diagnose or b.explain:
        lines.append("Peak RSS (VmHWM) of a python that only imports what `runner run` imports:")
        lines += import_memory(MEMORY_STAGES, REPO)
    return lines


MEMORY_STAGES = [
    ("python -c pass", ""),
    ("import runner.cli", "import runner.cli"),
    (
        "+ runner.verbs.run, runner.engine",
        "import runner.cli, runner.verbs.run, runner.engine",
    ),
    (
        "+ runner.state.configmap_secret",
        "import runner.cli, runner.verbs.run, runner.engine, runner.state.configmap_secret",
    ),
    (
        "+ the kubernetes client, as the store loads it",
        "import runner.cli, runner.verbs.run, runner.engine, runner.state.configmap_secret\n"
        "from runner.state.kubeclient_import import client_modules\nclient_modules()",
    ),
]
