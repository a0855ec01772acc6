"""12: a big base file: `runner run` of a step whose one manifest is `from:` a 30 MiB
multi-document YAML (3,000 ConfigMaps; 3 MiB and 300 in quick mode), copied without `set:`,
in a stamped folder: wall time and peak RSS (GNU time's %M).

Marketplace operator bundles are 1.2-1.6 MB; a base file may be 32 MiB. Without `set:` the
runner reads, checks and writes one document at a time (runner/engine/manifest_sources.py), so
its peak RSS must not grow with the file: the goal is under 100 MB, well inside a 256 MiB pod.
No state, no API server.
"""

from __future__ import annotations

import shutil
import subprocess

from common import RUNNER, Series, mb, ms
from harness import Bench, BenchError, progress, tail

from scenarios.manifests import run_measured

SIZE_MIB, DOCUMENTS = 30, 3000
QUICK_SIZE_MIB, QUICK_DOCUMENTS = 3, 300
RSS_GOAL_KB = 100 * 1024
STEP = """\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata: {name: big-base}
spec:
  manifests:
    - { path: bundle.yaml, from: ../templates/bundle.yaml }
"""


def bundle(size: int, documents: int) -> str:
    """`documents` ConfigMaps of about size/documents bytes each, as one multi-document file."""
    per = size // documents
    out = []
    for i in range(documents):
        head = (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04d}\n"
            f"  labels: {{app: bench, index: '{i}'}}\ndata:\n"
        )
        lines, used, k = [head], len(head), 0
        while used < per - 60:
            line = f"  key-{k:03d}: {'v' * 40}-{i}-{k}\n"
            lines.append(line)
            used += len(line)
            k += 1
        out.append("".join(lines))
    return "---\n".join(out)


def big_base(b: Bench) -> None:
    size_mib, documents = (QUICK_SIZE_MIB, QUICK_DOCUMENTS) if b.quick else (SIZE_MIB, DOCUMENTS)
    runs = b.runs
    b.add(f"12. runner run, a {size_mib} MiB base file of {documents} documents, median of {runs}")
    progress(f"big base file: {size_mib} MiB, {runs} runs")
    root = b.tmp / "big-base"
    steps, templates, request = root / "steps.d", root / "templates", root / "input"
    for folder in (steps, templates, request):
        folder.mkdir(parents=True)
    (steps / "big-base.yaml").write_text(STEP)
    (templates / "bundle.yaml").write_text(bundle(size_mib << 20, documents))
    (request / "object.yaml").write_text(
        "apiVersion: x/v1\nkind: App\nmetadata: {name: bench-app, namespace: default}\n"
    )
    stamped = subprocess.run(
        [RUNNER, "validate", "--stamp", str(steps)], capture_output=True, text=True
    )
    if stamped.returncode != 0:
        raise BenchError(f"`runner validate --stamp` failed:\n{tail(stamped.stderr)}")
    wall, peak = Series(), Series()
    for round_ in range(runs + 1):  # round 0 warms the page cache: not counted
        output, metadata = root / "output", root / "metadata"
        for folder in (output, metadata):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        argv = [
            RUNNER, "run", "big-base", "--steps-dir", str(steps), "--input", str(request),
            "--output", str(output), "--metadata", str(metadata),
        ]  # fmt: skip
        measured = run_measured(argv, b.base_env(), root, b.out_dir("big-base"))
        if measured.timed.rc != 0:
            raise BenchError(
                f"`runner run` ({size_mib} MiB base) exited {measured.timed.rc}:\n"
                f"{tail(measured.timed.stderr)}"
            )
        written = (output / "bundle.yaml").read_text().count("\nkind: ConfigMap")
        if written + 1 < documents:
            raise BenchError(f"the {size_mib} MiB base wrote {written} documents, not {documents}")
        if round_:
            wall.add(measured.timed.wall)
            peak.add(measured.peak_kb)
    b.add("runner run", ms(wall.median), "-", "-", f"{wall.spread}; peak RSS {mb(peak.median)}")
    b.goal(
        f"a big base file copied in under {RSS_GOAL_KB // 1024} MB peak RSS",
        peak.median <= RSS_GOAL_KB,
        f"peak RSS {mb(peak.median)}, wall {ms(wall.median)}",
    )
