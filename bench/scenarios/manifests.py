"""6: one request rendered into 100 manifests (quick mode: 10), `runner run` of one step with a
`manifests:` entry per file against the marketplace's bash + yq (bench/manifests_script.sh):
wall time, peak RSS, and whether both wrote the same documents, compared as data.

Half the files are a base Deployment changed by `from:` + `set:` (the script: one piped `yq`
per field), half `document:` with templates (the script: a heredoc). The runner needs no API
server here, so this section only uses the Bench's table and scratch folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from common import RUNNER, Series, Timed, mb, ms, ratio, run_timed
from harness import BENCH, Bench, BenchError, progress, tail

SCRIPT = BENCH / "manifests_script.sh"
STEP_NAME = "render-manifests"
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")
MAX_RUNS = 3  # the script makes ~150 yq calls; 7 runs of it would double the bench's time
REQUEST = {
    "apiVersion": "workshop.kratix.io/v1",
    "kind": "App",
    "metadata": {"name": "bench-app", "namespace": "team-a"},
    "spec": {"image": "nginx:1.25", "size": "large", "port": 8080},
}
BASE = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "TBD", "labels": {"app": "bench-app"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "bench-app"}},
        "template": {
            "metadata": {"labels": {"app": "bench-app"}},
            "spec": {
                "containers": [{"name": "app", "image": "TBD", "ports": [{"containerPort": 8080}]}]
            },
        },
    },
}


@dataclass
class Measured:
    timed: Timed
    peak_kb: float  # the command's own peak RSS, or its largest child's


def run_measured(argv: Sequence[str], env: dict[str, str], cwd: Path, out: Path) -> Measured:
    """run_timed, with the peak RSS GNU time reports. wait4 on the bench's own child can't give
    it: a child started with vfork keeps the bench's peak as its floor across exec (the bench
    has held 30 MiB states by now), so a 20 MB process would read as the bench's size."""
    if GNU_TIME is None:
        timed = run_timed(argv, env, cwd, out)
        return Measured(timed, float("nan"))
    report = out / "maxrss"
    timed = run_timed([GNU_TIME, "-f", "%M", "-o", str(report), *argv], env, cwd, out)
    try:
        peak = float(report.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        peak = float("nan")
    return Measured(timed, peak)


def step(count: int) -> dict[str, Any]:
    """The runner's step: the script's inputs, its size -> replicas rule, and one manifest
    per file the script writes."""
    half = count // 2
    deployments = [
        {
            "path": f"deployments/{i}.yaml",
            "from": "../templates/deployment.yaml",
            "set": {
                ".metadata.name": f"${{{{ inputs.name }}}}-{i}",
                ".spec.replicas": "${{ values.replicas }}",
                ".spec.template.spec.containers[0].image": "${{ inputs.image }}",
            },
        }
        for i in range(1, half + 1)
    ]
    services = [
        {
            "path": f"services/{i}.yaml",
            "document": {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": f"${{{{ inputs.name }}}}-{i}",
                    "namespace": "${{ inputs.namespace }}",
                    "labels": {"app": "${{ inputs.name }}"},
                },
                "spec": {
                    "selector": {"app": "${{ inputs.name }}"},
                    "ports": [{"port": "${{ inputs.port }}", "targetPort": 8080}],
                },
            },
        }
        for i in range(half + 1, count + 1)
    ]
    return {
        "apiVersion": "runner.kratix.dev/v1alpha1",
        "kind": "Step",
        "metadata": {"name": STEP_NAME, "description": f"{count} manifests for one request."},
        "spec": {
            "on": {"workflow": "resource", "action": ["configure"]},
            "inputs": {
                "name": {"query": ".metadata.name"},
                "namespace": {"query": ".metadata.namespace", "default": "default"},
                "image": {"query": ".spec.image"},
                "size": {"query": ".spec.size", "default": "small", "enum": ["small", "large"]},
                "port": {"query": ".spec.port", "default": 80},
            },
            "values": {"replicas": {"from": "inputs.size", "map": {"small": 1, "large": 3}}},
            "manifests": deployments + services,
        },
    }


class Folders:
    """One container's folders for this section, beside the step and its base file."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.input, self.steps, self.templates = (
            root / "input",
            root / "steps.d",
            root / "templates",
        )
        for folder in (self.input, self.steps, self.templates):
            folder.mkdir(parents=True)
        (self.input / "object.yaml").write_text(yaml.safe_dump(REQUEST, sort_keys=False))
        self.base = self.templates / "deployment.yaml"
        self.base.write_text(yaml.safe_dump(BASE, sort_keys=False))
        (self.steps / f"{STEP_NAME}.yaml").write_text(yaml.safe_dump(step(count), sort_keys=False))

    def fresh(self, tag: str) -> tuple[Path, Path]:
        """Empty output and metadata folders, as in a new pod."""
        output, metadata = self.root / tag / "output", self.root / tag / "metadata"
        for folder in (output, metadata):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        return output, metadata


def manifests(b: Bench) -> None:
    count = 10 if b.quick else 100
    runs = min(b.runs, MAX_RUNS)
    folders = Folders(b.tmp / "manifests", count)
    stamped = run_timed(
        [RUNNER, "validate", "--stamp", str(folders.steps)],
        b.base_env(),
        folders.root,
        b.out_dir("manifests-stamp"),
    )
    progress(f"manifests: {runs} rounds of runner / bash + yq, {count} manifests each")
    runner_runs: list[Measured] = []
    bash_runs: list[Measured] = []
    failure = None if stamped.rc == 0 else first_error(stamped.stderr)

    def run_runner() -> None:
        nonlocal failure
        if failure is not None:
            return
        output, metadata = folders.fresh("runner")
        argv = [RUNNER, "run", STEP_NAME, "--steps-dir", str(folders.steps)]
        argv += ["--input", str(folders.input), "--output", str(output)]
        argv += ["--metadata", str(metadata), "--log-format", "text"]
        run = run_measured(argv, b.base_env(), folders.root, b.out_dir("manifests-runner"))
        if run.timed.rc != 0:
            failure = f"exit {run.timed.rc}: {first_error(run.timed.stderr)}"
        else:
            runner_runs.append(run)

    def run_bash() -> None:
        output, _ = folders.fresh("bash")
        env = b.base_env()
        env.update(
            PATH="/usr/local/bin:/usr/bin:/bin",
            KRATIX_INPUT_DIR=str(folders.input),
            KRATIX_OUTPUT_DIR=str(output),
            MANIFESTS=str(count),
            MANIFESTS_BASE=str(folders.base),
        )
        run = run_measured(["bash", str(SCRIPT)], env, folders.root, b.out_dir("manifests-bash"))
        if run.timed.rc != 0:
            rc, stderr = run.timed.rc, tail(run.timed.stderr)
            raise BenchError(f"bench/manifests_script.sh exited {rc}:\n{stderr}")
        bash_runs.append(run)

    order: list[Callable[[], None]] = [run_runner, run_bash]
    for i in range(runs):
        for action in order if i % 2 == 0 else reversed(order):
            action()

    yq_calls = 5 + 3 * (count // 2)
    b.add(
        f"6. {count} manifests for one request (half from: + set:, half document:), "
        f"median of {runs} (min-max s); seed: bash + yq"
    )
    if failure is not None:
        b.add(_cut(f"runner side failed: {failure}"), "-", "", "", "bash still measured; below")
        b.notes.append(f"manifests: runner side failed: {failure}")
    against_bash(b, runner_runs, bash_runs, f"{yq_calls} yq calls")
    if failure is None:
        runner_out, bash_out = (folders.root / side / "output" for side in ("runner", "bash"))
        same = compare_outputs(runner_out, bash_out)
        verdict, note = (
            ("yes", f"all {count} files") if same is None else ("NO", "first difference: below")
        )
        b.add("the same documents, compared as data", verdict, "", "", note)
        if same is not None:
            b.notes.append(f"manifests: the runner's and the script's documents differ: {same}")


def against_bash(
    b: Bench, runner_runs: Sequence[Measured], bash_runs: Sequence[Measured], calls: str
) -> tuple[Series, Series]:
    """The rows of the runner against a bash + yq script: wall time and peak RSS, medians;
    the wall times (runner, bash)."""
    wall_r = Series([r.timed.wall for r in runner_runs])
    wall_b = Series([r.timed.wall for r in bash_runs])
    rss_r = Series([r.peak_kb for r in runner_runs])
    rss_b = Series([r.peak_kb for r in bash_runs])
    b.add(
        "wall time",
        ms(wall_r.median),
        ms(wall_b.median),
        ratio(wall_r.median, wall_b.median),
        f"runner {wall_r.spread}; bash {wall_b.spread}, {calls}",
    )
    b.add(
        "peak RSS (GNU time %M), median",
        mb(rss_r.median),
        mb(rss_b.median),
        ratio(rss_r.median, rss_b.median),
        "bash: itself or its largest yq" if GNU_TIME else "no /usr/bin/time: not measured",
    )
    return wall_r, wall_b


def _cut(text: str, width: int = 90) -> str:
    """A table cell's text, at most `width` characters (the notes have it whole)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def first_error(stderr: str) -> str:
    """The line that says what went wrong: the first naming an error, else the first line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or line.startswith("runner: ✖"):
            return line
    return lines[0] if lines else "(no stderr)"


def documents(root: Path) -> dict[str, list[Any]]:
    """Every YAML file under root as its documents."""
    return {
        path.relative_to(root).as_posix(): list(yaml.safe_load_all(path.read_text()))
        for path in sorted(root.rglob("*.yaml"))
    }


def compare_outputs(runner_root: Path, bash_root: Path) -> str | None:
    """None when both trees hold the same files with the same documents; else the first
    difference."""
    ours, theirs = documents(runner_root), documents(bash_root)
    missing = sorted(theirs.keys() - ours.keys())
    if missing:
        return f"{len(missing)} files the script wrote are not the runner's, e.g. {missing[0]}"
    extra = sorted(ours.keys() - theirs.keys())
    if extra:
        return f"{len(extra)} files the runner wrote are not the script's, e.g. {extra[0]}"
    for path in sorted(ours):
        if ours[path] != theirs[path]:
            return f"{path}: runner {ours[path]!r} vs script {theirs[path]!r}"
    return None
