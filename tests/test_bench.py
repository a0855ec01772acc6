"""The benchmarks can't rot: bench/run.py's quick mode (every section once, at its smallest
size) runs to the end and prints its table, its goals and where the time goes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SECTIONS = (
    "[1. one state-backed step, small state: wall time, median of 1 (min-max s)]",
    "[2. API requests per run, counted at the server]",
    "[3. peak RSS of the runner process, median]",
    "[4. runner validate on 100 step files vs check-jsonschema (bench/validate.py)]",
    "[5. saving and restoring state, median of 1; seed: fresh kubectl cache]",
    "[6. 10 manifests for one request (half from: + set:, half document:), median of 1",
    "[7. runner run STEP, 1 to 1,000 step files in a stamped folder, median of 1 (min-max s)]",
    "start-up against the steps folder (`runner run step-0000`",
    "[8. runner run and plan, a 5 MB request value, median of 1 (min-max s)]",
    "[9. in a pod (service account, HTTPS), stamped, small state: median of 1 (min-max s)]",
    "what talking to the API costs to import, in a fresh interpreter",
    "[10. state stores: save and restore in a fresh process, median of 1; plain | encrypted]",
    "[10b. stamped runner run on the s3 and local stores, median of 1 (min-max s)]",
    "[12. runner run, a 3 MiB base file of 300 documents, median of 1]",
)
GOALS = (
    "runner wall time <= half the seed's",
    "API requests <= the seed's",
    "peak RSS <= 60 MB",
    "validate no slower than check-jsonschema",
    "0.9 MiB save+restore <= half the seed's",
    "10 MiB handled",
    "1,000 step files start within 1.1x and 2 MB of 1",
    "plan of a big request within 2.0x and 20 MB of run",
    "runner in a pod <= 0.3x the seed's wall time",
    "encryption adds under 10% to a save",
    "s3 store start-up within 1.5x of local",
    "a big base file copied in under 100 MB peak RSS",
)


@pytest.mark.slow
def test_the_quick_bench_prints_its_table_and_goals_and_exits_0() -> None:
    env = {**os.environ, "BENCH_QUICK": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("kratix-step-runner bench: --quick"), out
    assert re.search(r"^measure +runner +seed +runner/seed +notes$", out, re.M), out
    for section in SECTIONS:
        assert section in out, f"no section {section!r}:\n{out}"
    verdicts = dict(
        (name, verdict)
        for verdict, name in re.findall(r"^  (PASS|FAIL|n/a ) +(.+?): ", out, re.M)
    )  # fmt: skip
    for goal in GOALS:
        # Measured, whatever the figures (a quick run's single sample says little).
        assert verdicts.get(goal) in ("PASS", "FAIL"), f"goal {goal!r} not judged:\n{out}"
    assert "the seed's approach fails" in out and "the ConfigMap is now GONE" in out
    assert "where the time goes" in out and "python -X importtime of one `runner run`" in out
    assert "cProfile of one `runner run`" in out, out
    assert "Traceback" not in result.stderr, result.stderr
