"""11: a request's list of 100 users (quick mode: 5) rendered by two `forEach` manifest entries
(a file per user, and one file of every user's document), `runner run` against the
marketplace's bash loop with a `yq` per field and a heredoc per document
(bench/foreach_script.sh): wall time, peak RSS, and whether both wrote the same documents,
compared as data. No API server is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from common import RUNNER, ms, run_timed
from harness import BENCH, Bench, BenchError, progress, tail

from scenarios.manifests import (
    Measured,
    against_bash,
    compare_outputs,
    first_error,
    run_measured,
)

SCRIPT = BENCH / "foreach_script.sh"
STEP_NAME = "render-users"
MAX_RUNS = 3
# The script makes 2 yq calls per user: 100 users take 20-40 s with Debian's yq (a Python
# wrapper around jq). One run of it is enough against a gap of more than 10x.
BASH_RUNS = 1


def request(count: int) -> dict[str, Any]:
    users = [{"name": f"user-{i:03d}", "role": ("admin", "dev")[i % 2]} for i in range(count)]
    return {
        "apiVersion": "workshop.kratix.io/v1",
        "kind": "Team",
        "metadata": {"name": "bench-team", "namespace": "team-a"},
        "spec": {"users": users},
    }


STEP = {
    "apiVersion": "runner.kratix.dev/v1alpha1",
    "kind": "Step",
    "metadata": {"name": STEP_NAME, "description": "A ConfigMap per user, and all users."},
    "spec": {
        "on": {"workflow": "resource", "action": ["configure"]},
        "inputs": {"users": {"query": ".spec.users", "type": "array"}},
        "manifests": [
            {
                "path": "users/${{ item.name }}.yaml",
                "forEach": "inputs.users",
                "document": {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "user-${{ item.name }}"},
                    "data": {"role": "${{ item.role }}", "index": "${{ index }}"},
                },
            },
            {
                "path": "all.yaml",
                "forEach": "inputs.users",
                "document": {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {
                        "name": "${{ item.name }}",
                        "labels": {"role": "${{ item.role }}"},
                    },
                },
            },
        ],
    },
}


def for_each(b: Bench) -> None:
    count = 5 if b.quick else 100
    runs = min(b.runs, MAX_RUNS)
    root = b.tmp / "foreach"
    folders = {name: root / name for name in ("input", "steps.d")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["input"] / "object.yaml").write_text(yaml.safe_dump(request(count), sort_keys=False))
    (folders["steps.d"] / f"{STEP_NAME}.yaml").write_text(yaml.safe_dump(STEP, sort_keys=False))
    stamped = run_timed(
        [RUNNER, "validate", "--stamp", str(folders["steps.d"])],
        b.base_env(),
        root,
        b.out_dir("foreach-stamp"),
    )
    if stamped.rc != 0:
        raise BenchError(f"foreach: the step does not validate: {first_error(stamped.stderr)}")
    progress(f"forEach: {runs} runs of runner, {BASH_RUNS} of bash + yq, {count} users each")
    runner_runs: list[Measured] = []
    bash_runs: list[Measured] = []

    def fresh(tag: str) -> Path:
        output = root / tag / "output"
        if output.exists():
            for path in sorted(output.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
        (root / tag / "metadata").mkdir(parents=True, exist_ok=True)
        output.mkdir(parents=True, exist_ok=True)
        return output

    def run_runner() -> None:
        output = fresh("runner")
        argv = [RUNNER, "run", STEP_NAME, "--steps-dir", str(folders["steps.d"])]
        argv += ["--input", str(folders["input"]), "--output", str(output)]
        argv += ["--metadata", str(root / "runner" / "metadata"), "--log-format", "text"]
        run = run_measured(argv, b.base_env(), root, b.out_dir("foreach-runner"))
        if run.timed.rc != 0:
            raise BenchError(f"foreach: runner exited {run.timed.rc}: {tail(run.timed.stderr)}")
        runner_runs.append(run)

    def run_bash() -> None:
        output = fresh("bash")
        env = b.base_env()
        env.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            KRATIX_INPUT_DIR=str(folders["input"]),
            KRATIX_OUTPUT_DIR=str(output),
        )
        run = run_measured(["bash", str(SCRIPT)], env, root, b.out_dir("foreach-bash"))
        if run.timed.rc != 0:
            raise BenchError(
                f"bench/foreach_script.sh exited {run.timed.rc}:\n{tail(run.timed.stderr)}"
            )
        bash_runs.append(run)

    order: list[Callable[[], None]] = [run_runner, run_bash]
    for i in range(runs):
        for action in order if i % 2 == 0 else reversed(order):
            if action is run_runner or len(bash_runs) < BASH_RUNS:
                action()

    b.add(
        f"11. forEach: {count} users into {count + 1} files ({2 * count} documents), "
        f"median of {runs} (bash: {BASH_RUNS}) (min-max s); seed: a bash loop + yq"
    )
    wall_r, wall_b = against_bash(b, runner_runs, bash_runs, f"{1 + 2 * count} yq calls")
    same = compare_outputs(root / "runner" / "output", root / "bash" / "output")
    verdict, note = ("yes", f"all {count + 1} files") if same is None else ("NO", "below")
    b.add("the same documents, compared as data", verdict, "", "", note)
    if same is not None:
        b.notes.append(f"forEach: the runner's and the script's documents differ: {same}")
    b.goal(
        "forEach no slower than the bash loop",
        wall_r.median <= wall_b.median,
        f"runner {ms(wall_r.median)} vs bash {ms(wall_b.median)} for {count} users",
    )
