"""Runs against an API server that fails a share of requests: 503s, 429s, TCP resets, answers
lost after the write happened, slow answers. Every run either succeeds with bounded retries or
exits 3 with the stored state whole; no update is ever lost or applied twice (a counter step:
after each run the stored state is exactly the one before or the one after, as the exit code
says, and the final count is the successful runs plus the exit-3 runs whose save landed).

`bench/faults.py` sweeps the rates and finds the highest at which 20 of 20 runs succeed; this
is the quick fixed-rate version. The fault kinds run side by side, each against its own API
server, so the matrix costs the time of its slowest row.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.kubeapi import FakeKubeAPI
from tests.reliability.helpers import (
    Tally,
    counted_runs,
    counter_step,
    make_pipeline,
    point_at,
    state_number,
    stored,
)

# Every test here takes more than a few seconds: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

BIG = 1_200_000  # two chunk objects: restoring and saving are several requests each
RUNS = 6

# kind -> (store, faults): rates well under the highest at which bench/faults.py sees 20 of 20
# runs succeed
FIXED = {
    "503": ("configmap", {"rate": 0.25, "status": 503}),
    "reset": ("configmap", {"reset_rate": 0.25}),
    "lost-answer": ("configmap", {"lost_response_rate": 0.2}),
    "429": ("configmap", {"rate": 0.05, "status": 429}),  # each asks the client to wait 1 s
    "mixed": ("secret", {"rate": 0.1, "reset_rate": 0.1, "lost_response_rate": 0.1,
                         "latency": 0.03}),
}


def _rows(tallies: dict[str, Tally]) -> str:
    lines = [f"{'fault':12} {'runs':>4} {'ok':>3} {'exit3':>5} {'applied':>7} {'lost':>4} "
             f"{'dup':>3} {'final':>5} {'s/run':>6}"]
    for kind, t in tallies.items():
        lines.append(f"{kind:12} {t.runs:>4} {t.ok:>3} {t.failed:>5} {t.applied:>7} {t.lost:>4} "
                     f"{t.duplicated:>3} {t.final:>5} {sum(t.seconds) / max(1, t.runs):>6.2f}"
                     + (f"  OTHER: {t.other}" if t.other else ""))
    return "\n".join(lines)


def test_runs_under_api_faults_never_lose_or_duplicate_an_update(tmp_path, ledger):
    def one(kind: str) -> tuple[Tally, int]:
        store, faults = FIXED[kind]
        pipeline = make_pipeline(tmp_path / kind)
        with FakeKubeAPI() as api:
            point_at(pipeline, api)
            counter_step(pipeline, store, big=BIG)
            tally = counted_runs(pipeline, api, tmp_path / kind, RUNS, {**faults, "seed": 7},
                                 BIG, store)
            return tally, sum(1 for *_, status in api.requests if status in (0, 429, 503))

    with ThreadPoolExecutor(len(FIXED)) as pool:
        results = dict(zip(FIXED, pool.map(one, FIXED), strict=True))
    tallies = {kind: tally for kind, (tally, _) in results.items()}
    for tally, faults in results.values():
        ledger["runs"] += tally.runs
        ledger["faults"] += faults
        ledger["lost"] += tally.lost + tally.duplicated
    table = _rows(tallies)
    print("\n" + table)
    for tally in tallies.values():
        assert tally.clean, table
        assert tally.ok + tally.failed == RUNS, table
        assert tally.final == tally.ok + tally.applied, table
        # Retries are bounded and enough at these rates: at most one run may give up (exit 3).
        assert tally.ok >= RUNS - 1, table


@pytest.mark.parametrize("fault", ["503", "lost-answer"])
def test_an_api_that_fails_while_saving_exits_3_with_a_whole_state(kube, pipeline, tmp_path, fault):
    """The command ran, then every write is refused (503): exit 3 after bounded retries, and the
    stored state is the old one, whole. Or every update lands but its answer is lost: read back,
    the save is there, so the run succeeds (tests/reliability/test_lost_answers.py). Once the
    API is back the next run counts on from it."""
    counter_step(pipeline, "configmap", big=BIG)
    assert pipeline.run("run").returncode == 0
    if fault == "503":  # chunks, main object and Lease release all refused
        fail = {"rate": 1.0, "only": ["create", "update", "delete"]}
    else:  # the chunks are created; the main object's update lands but its answer never comes
        fail = {"lost_response_rate": 1.0, "only": ["update"]}
    then = json.dumps({"url": kube.url, "fail": fail})
    result = pipeline.run("run", "--lock-wait", "5", env={"BUMP_THEN_FAIL": then,
                                                          "RUNNER_KUBE_ATTEMPTS": "3"})
    assert "count is 2" in result.stdout
    if fault == "503":
        assert result.returncode == 3, result.stderr
        assert "did not answer" in result.stderr and "after 3 attempts" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
    kept = state_number(stored(kube, tmp_path), BIG)
    assert kept == (1 if fault == "503" else 2), result.stderr
    kube.fail()
    again = pipeline.run("run", "--lock-wait", "30")
    assert again.returncode == 0, again.stderr
    assert f"count is {kept + 1}" in again.stdout
    assert state_number(stored(kube, tmp_path), BIG) == kept + 1
