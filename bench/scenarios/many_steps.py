"""7: start-up against the size of the steps folder: `runner run STEP` with 1, 100 and 1,000
step files in a folder stamped by `runner validate --stamp` (as the image build does), wall
time and peak RSS, each with its ratio to the 1-file folder's.

The stamp's index (runner/stepfile/index.py) lets the run parse only its step's file, so the
figures should not grow with the folder: the goal is 1,000 files within 1.1x the 1-file wall
time and within 2 MB of its peak RSS. The step is trivial (`true`, no state, no API server)
so that start-up is all there is to measure; the other files are steps like it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common import RUNNER, Series, mb, ms, ratio, table
from harness import Bench, BenchError, progress, tail

from scenarios.manifests import run_measured

SIZES = (1, 100, 1000)
STEP_NAME = "step-0000"
WALL_GOAL = 1.1  # 1,000 files' wall time over 1 file's
RSS_GOAL_KB = 2 * 1024  # 1,000 files' peak RSS over 1 file's
REQUEST = (
    "apiVersion: workshop.kratix.io/v1\nkind: App\nmetadata:\n  name: bench-app\n"
    "  namespace: default\nspec:\n  tier: small\n"
)


def step_file(index: int) -> str:
    """A step like a real one (inputs, env, a command), a few hundred bytes."""
    return f"""\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata:
  name: step-{index:04d}
  description: Step {index} of a large steps folder.
spec:
  on: {{workflow: resource, action: [configure]}}
  inputs:
    name:      {{ query: .metadata.name }}
    namespace: {{ query: .metadata.namespace, default: default }}
    tier:      {{ query: .spec.tier, default: small, enum: [small, large] }}
  env:
    TARGET: "${{{{ inputs.name }}}}-{index}"
    TIER: "${{{{ inputs.tier }}}}"
  run:
    - ["true"]
"""


class Folder:
    """A container's folders with `count` stamped step files."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.count = count
        self.steps, self.input = root / "steps.d", root / "input"
        self.output, self.metadata = root / "output", root / "metadata"
        for folder in (self.steps, self.input):
            folder.mkdir(parents=True)
        (self.input / "object.yaml").write_text(REQUEST)
        for index in range(count):
            (self.steps / f"step-{index:04d}.yaml").write_text(step_file(index))
        stamped = subprocess.run(
            [RUNNER, "validate", "--stamp", str(self.steps)], capture_output=True, text=True
        )
        if stamped.returncode != 0:
            raise BenchError(f"`runner validate --stamp` ({count} files):\n{tail(stamped.stderr)}")

    def reset(self) -> None:
        for folder in (self.output, self.metadata):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    def argv(self) -> list[str]:
        return [
            RUNNER, "run", STEP_NAME, "--steps-dir", str(self.steps), "--input", str(self.input),
            "--output", str(self.output), "--metadata", str(self.metadata),
        ]  # fmt: skip


def many_steps(b: Bench) -> None:
    runs = b.runs
    b.add(
        f"7. runner run STEP, 1 to 1,000 step files in a stamped folder, median of {runs} "
        "(min-max s)"
    )
    progress(f"many steps: {', '.join(map(str, SIZES))} step files, {runs} runs each")
    folders = [Folder(b.tmp / "many-steps" / str(n), n) for n in SIZES]
    walls = {n: Series() for n in SIZES}
    peaks = {n: Series() for n in SIZES}
    for round_ in range(runs + 1):  # round 0 warms the page cache: not counted
        for folder in folders if round_ % 2 else folders[::-1]:  # alternate, as elsewhere
            folder.reset()
            measured = run_measured(
                folder.argv(), b.base_env(), folder.root, b.out_dir(f"many-steps-{folder.count}")
            )
            if measured.timed.rc != 0:
                raise BenchError(
                    f"`runner run` ({folder.count} step files) exited {measured.timed.rc}:\n"
                    f"{tail(measured.timed.stderr)}"
                )
            if round_:
                walls[folder.count].add(measured.timed.wall)
                peaks[folder.count].add(measured.peak_kb)
    one_wall, one_peak = walls[1].median, peaks[1].median
    rows = []
    for n in SIZES:
        wall, peak = walls[n].median, peaks[n].median
        more = f"{(peak - one_peak) / 1024:+.1f} MB"
        b.add(
            f"{n:,} step file{'' if n == 1 else 's'}",
            ms(wall),
            "-",
            "-",
            f"{walls[n].spread}; {ratio(wall, one_wall)} of 1 file's; peak RSS {mb(peak)} ({more})",
        )
        rows.append([f"{n:,}", ms(wall), ratio(wall, one_wall), mb(peak), more])
    b.notes.append(
        f"start-up against the steps folder (`runner run {STEP_NAME}`, stamped folder, "
        f"median of {runs}; peak RSS by GNU time):\n"
        + table(rows, ["step files", "wall", "to 1 file", "peak RSS", "to 1 file"])
    )
    big = SIZES[-1]
    wall_ratio = walls[big].median / one_wall
    extra = peaks[big].median - one_peak
    b.goal(
        f"{big:,} step files start within {WALL_GOAL}x and 2 MB of 1",
        wall_ratio <= WALL_GOAL and extra <= RSS_GOAL_KB,
        f"wall {ms(walls[big].median)} vs {ms(one_wall)} ({wall_ratio:.2f}x); peak RSS "
        f"{mb(peaks[big].median)} vs {mb(one_peak)} ({extra / 1024:+.1f} MB)",
    )
