"""N runs at once on one state (N = 2, 5, 10): the Lease (or the local flock) serialises them,
so no two command executions overlap (each appends `start`/`end` stamps to a shared file) and
every update is kept: the stored state ends at exactly N with the history 1..N."""

from __future__ import annotations

import pytest

from tests.reliability.helpers import (
    counter_step,
    finish,
    intervals,
    lease_holder,
    overlaps,
    state_number,
    stored,
    stored_local,
)

# Every test here takes more than a few seconds: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

BIG = 1_200_000


def _run_at_once(pipeline, n: int, log, extra_env=None, timeout: float = 150):
    env = {"BUMP_INTERVALS": str(log), "BUMP_SLEEP": "0.1", **(extra_env or {})}
    processes = [pipeline.popen("run", "--lock-wait", "120", env=env) for _ in range(n)]
    return [finish(p, timeout) for p in processes]


@pytest.mark.parametrize("n", [2, 5, 10])
def test_concurrent_runs_on_one_configmap_state_are_serialised(kube, pipeline, tmp_path, n,
                                                               ledger):
    pipeline.env["RUNNER_LEASE_SECONDS"] = "5"
    counter_step(pipeline, "configmap", big=BIG)
    log = tmp_path / "intervals"
    results = _run_at_once(pipeline, n, log)
    codes = [code for code, _, _ in results]
    assert codes == [0] * n, [err[-800:] for code, _, err in results if code]
    counts = sorted(int(out.split()[-1]) for _, out, _ in results)
    final = state_number(stored(kube, tmp_path), BIG)
    ledger["lost"] += max(0, n - final)
    assert counts == list(range(1, n + 1))  # each run saw the one before it
    assert final == n
    spans = intervals(log)
    assert len(spans) == n and all(end is not None for _, end, _ in spans)
    assert overlaps(spans) == [], spans
    assert lease_holder(kube) is None


def test_a_command_longer_than_the_lease_keeps_the_lock(kube, pipeline, tmp_path, ledger):
    """Commands of 2.5 s under a 2 s Lease: the holder renews it, so nobody takes it over and
    the runs still never overlap."""
    n = 2
    counter_step(pipeline, "configmap")
    log = tmp_path / "intervals"
    results = _run_at_once(pipeline, n, log, {"BUMP_SLEEP": "2.5"})
    assert [code for code, _, _ in results] == [0] * n, [err[-800:] for _, _, err in results]
    final = state_number(stored(kube, tmp_path))
    ledger["lost"] += max(0, n - final)
    assert final == n
    spans = intervals(log)
    assert overlaps(spans) == [], spans
    assert all(end - start > 2.2 for start, end, _ in spans)  # each outlived the Lease


def test_concurrent_runs_on_one_local_state_are_serialised(pipeline, tmp_path, ledger):
    n = 10
    counter_step(pipeline, "local", big=BIG)
    log = tmp_path / "intervals"
    results = _run_at_once(pipeline, n, log)
    assert [code for code, _, _ in results] == [0] * n, [err[-800:] for _, _, err in results]
    final = state_number(stored_local(pipeline.state_dir), BIG)
    ledger["lost"] += max(0, n - final)
    assert final == n
    assert overlaps(intervals(log)) == []


RACER = """
    workdir: ../work
    copyWorkdir: true
    state: {store: configmap, name: counter, lock: false, files: [{path: count.txt, key: count}]}
    run:
      - script: |
          n=$(cut -d' ' -f1 count.txt 2>/dev/null || echo 0)
          sleep 1
          echo "$((n + 1)) $$" > count.txt
          echo "count is $((n + 1))"
"""


def _racers(pipeline, n: int, distinct: bool):
    body = RACER if distinct else RACER.replace(' $$"', '"')
    pipeline.step("counter", body)
    results = _run_at_once(pipeline, n, pipeline.root / "intervals")
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 3}, [err[-800:] for _, _, err in results]
    return results, codes


def test_without_the_lock_racing_runs_fail_with_exit_3_and_lose_nothing(kube, pipeline,
                                                                        tmp_path, ledger):
    """lock: false: the runs overlap, but a save never overwrites a state saved since it was
    read (resourceVersion, then a digest check): the losers exit 3, every success is counted."""
    results, codes = _racers(pipeline, 5, distinct=True)
    assert 3 in codes  # they did race
    for code, _, err in results:
        if code == 3:
            assert "was changed by another run" in err, err
    final = int(stored(kube, tmp_path)["count"].split()[0])
    ledger["lost"] += max(0, codes.count(0) - final)
    assert final == codes.count(0)


def test_without_the_lock_racing_identical_saves_lose_nothing(kube, pipeline, tmp_path, ledger):
    _, codes = _racers(pipeline, 5, distinct=False)
    final = int(stored(kube, tmp_path)["count"].split()[0])
    assert final == codes.count(0), (codes, final)


def test_concurrent_runs_under_api_faults_are_serialised_and_lose_nothing(kube, pipeline,
                                                                         tmp_path, ledger):
    n = 5
    pipeline.env["RUNNER_LEASE_SECONDS"] = "5"
    counter_step(pipeline, "configmap", big=BIG)
    kube.fail(rate=0.15, reset_rate=0.05, lost_response_rate=0.05, seed=11)
    log = tmp_path / "intervals"
    results = _run_at_once(pipeline, n, log, timeout=240)
    kube.fail()
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 3}, [err[-800:] for _, _, err in results]
    ok, failed = codes.count(0), codes.count(3)
    final = state_number(stored(kube, tmp_path), BIG)
    ledger["lost"] += max(0, ok - final)
    assert ok <= final <= ok + failed, (codes, final)
    assert overlaps([s for s in intervals(log) if s[1] is not None]) == []
