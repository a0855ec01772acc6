"""8: a big request: `runner run` and `runner plan` on a request holding one 20 MB value (5 MB
in quick mode) that a step takes as an input, wall time and peak RSS.

`plan` prints what `run` would do, the input among it; it must not cost much more than the run
itself (its YAML emitter once took 7-25 s over a 20 MB string that `run` read in 0.6 s). Writing
20 MB out costs plan about a third of a second more than run. The goal: plan within 2x of run's
wall time and 20 MB of its peak RSS. No state, no API server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import RUNNER, Series, mb, ms, ratio, table
from harness import Bench, BenchError, progress, tail

from scenarios.manifests import run_measured

SIZE_MB = 20
QUICK_SIZE_MB = 5
WALL_GOAL = 2.0  # plan's wall time over run's
RSS_GOAL_KB = 20 * 1024  # plan's peak RSS over run's
STEP = """\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata: {name: big-request}
spec:
  inputs:
    name: { query: .metadata.name }
    blob: { query: .spec.blob }
  run:
    - ["true", "${{ inputs.name }}"]
"""


def big_request(b: Bench) -> None:
    size = QUICK_SIZE_MB if b.quick else SIZE_MB
    runs = b.runs
    b.add(f"8. runner run and plan, a {size} MB request value, median of {runs} (min-max s)")
    progress(f"big request: {size} MB, run and plan, {runs} runs each")
    root = b.tmp / "big-request"
    steps, request = root / "steps.d", root / "input"
    for folder in (steps, request):
        folder.mkdir(parents=True)
    (steps / "big-request.yaml").write_text(STEP)
    blob = "x" * (size * 1000 * 1000)
    (request / "object.yaml").write_text(
        "apiVersion: workshop.kratix.io/v1\nkind: App\nmetadata: {name: bench-app, "
        f"namespace: default}}\nspec:\n  blob: {blob}\n"
    )
    walls = {verb: Series() for verb in ("run", "plan")}
    peaks = {verb: Series() for verb in ("run", "plan")}
    for round_ in range(runs + 1):  # round 0 warms the page cache: not counted
        for verb in ("run", "plan") if round_ % 2 else ("plan", "run"):
            output, metadata = root / "output", root / "metadata"
            for folder in (output, metadata):
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
            argv = [
                RUNNER, verb, "big-request", "--steps-dir", str(steps), "--input", str(request),
                "--output", str(output), "--metadata", str(metadata),
            ]  # fmt: skip
            measured = run_measured(argv, b.base_env(), root, _out(b, verb))
            if measured.timed.rc != 0:
                raise BenchError(
                    f"`runner {verb}` ({size} MB request) exited {measured.timed.rc}:\n"
                    f"{tail(measured.timed.stderr)}"
                )
            if round_:
                walls[verb].add(measured.timed.wall)
                peaks[verb].add(measured.peak_kb)
    rows = []
    for verb in ("run", "plan"):
        wall, peak = walls[verb].median, peaks[verb].median
        b.add(f"runner {verb}", ms(wall), "-", "-", f"{walls[verb].spread}; peak RSS {mb(peak)}")
        rows.append([verb, ms(wall), ratio(wall, walls["run"].median), mb(peak)])
    b.notes.append(
        f"a {size} MB request value (`runner run` and `runner plan`, median of {runs}; peak RSS "
        "by GNU time):\n" + table(rows, ["verb", "wall", "to run", "peak RSS"])
    )
    wall_ratio = walls["plan"].median / walls["run"].median
    extra = peaks["plan"].median - peaks["run"].median
    b.goal(
        f"plan of a big request within {WALL_GOAL}x and 20 MB of run",
        wall_ratio <= WALL_GOAL and extra <= RSS_GOAL_KB,
        f"wall {ms(walls['plan'].median)} vs {ms(walls['run'].median)} ({wall_ratio:.2f}x); "
        f"peak RSS {mb(peaks['plan'].median)} vs {mb(peaks['run'].median)} "
        f"({extra / 1024:+.1f} MB)",
    )


def _out(b: Bench, verb: str) -> Path:
    return b.out_dir(f"big-request-{verb}")
