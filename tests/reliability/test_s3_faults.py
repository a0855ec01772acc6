"""The s3 store under the faults the Kubernetes stores are tested with: a run killed while its
command runs, 503s, resets and lost answers (tests/fakes/faulty_http.py, a proxy in front of
the S3 server), and runs at once. The counter step (tests/reliability/helpers.py) makes every
stored state known exactly: after each run it is the one before or the one after, as the exit
code says, never a mix, and no update is lost or applied twice."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from runner.state.s3 import unpack
from tests.fakes.faulty_http import FaultProxy
from tests.reliability.helpers import (
    STATE_NAME,
    Tally,
    alive,
    counter_step,
    finish,
    intervals,
    kill_quietly,
    make_pipeline,
    overlaps,
    state_number,
    wait_until,
)
from tests.s3support import S3Endpoint, s3_endpoint

pytestmark = pytest.mark.slow  # each test runs the runner several times, some with retries

PREFIX = "team"
KEY = f"{PREFIX}/{STATE_NAME}"
BIG = 1_200_000  # incompressible: a state of some size, stored as is


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    yield from s3_endpoint()


@pytest.fixture
def proxy(s3: S3Endpoint, ledger: Any) -> Iterator[FaultProxy]:
    with FaultProxy(s3.url) as proxy:
        yield proxy
        ledger["faults"] += proxy.injected()


def use_s3(pipeline: Any, s3: S3Endpoint, url: str, lease_seconds: int = 2) -> str:
    """Point `pipeline`'s s3 store at `url` (the server, or a proxy in front of it), in a new
    bucket under PREFIX; the bucket's name."""
    bucket = s3.new_bucket()
    pipeline.env.update(s3.env(AWS_ENDPOINT_URL=url, RUNNER_LEASE_SECONDS=str(lease_seconds)))
    pipeline.env["RUNNER_STATE_STORE"] = f"s3://{bucket}/{PREFIX}"
    return bucket


def stored(s3: S3Endpoint, bucket: str) -> dict[str, bytes] | None:
    """The stored state, read from the server itself (no faults)."""
    body = s3.get(bucket, KEY)
    return None if body is None else unpack(body)


def test_a_run_killed_while_its_command_runs_leaves_the_lock_to_expire_and_the_next_takes_over(
    s3, pipeline, tmp_path, leftovers, ledger
):
    bucket = use_s3(pipeline, s3, s3.url)
    counter_step(pipeline, "s3", big=BIG)
    assert pipeline.run("run").returncode == 0
    log = tmp_path / "intervals"
    killed = pipeline.popen("run", env={"BUMP_INTERVALS": str(log), "BUMP_SLEEP": "60"})
    assert wait_until(lambda: len(intervals(log)) == 1, 30), killed.stderr
    command_pid = intervals(log)[0][2]
    leftovers.append(command_pid)
    killed.send_signal(signal.SIGKILL)
    finish(killed)
    kill_quietly(command_pid)
    ledger["signals"] += 1
    lock = json.loads(s3.get(bucket, f"{KEY}.lock") or b"{}")
    assert lock["expires"] > time.time() - 5  # the killed run's lock, left to expire
    result = pipeline.run("run", "--lock-wait", "20")
    assert result.returncode == 0, result.stderr
    assert "count is 2" in result.stdout  # ran on the state the killed run left: count 1
    assert state_number(stored(s3, bucket), BIG) == 2
    assert s3.keys(bucket) == [KEY]  # its own lock released
    assert not alive(command_pid)


# kind -> faults: every request may fail; 503s are retried by the client, resets and lost
# answers of a PUT are not (the save is then read back: there, or exit 3)
FAULTS = {
    "503": {"rate": 0.25, "status": 503},
    "reset": {"reset_rate": 0.1},
    "lost-answer": {"lost_response_rate": 0.15},
    "mixed": {"rate": 0.1, "reset_rate": 0.05, "lost_response_rate": 0.05, "latency": 0.01},
}
RUNS = 6


def _counted_runs(pipeline: Any, s3: S3Endpoint, bucket: str, proxy: FaultProxy,
                  faults: dict[str, Any]) -> Tally:  # fmt: skip
    """RUNS runs one after another under `faults`; after each, the stored state must be the
    one before or the one after, as the exit code says."""
    tally = Tally()
    before = state_number(stored(s3, bucket), BIG)
    proxy.fail(**faults, seed=7)
    for _ in range(RUNS):
        began = time.monotonic()
        result = pipeline.run("run", "--lock-wait", "30", timeout=120, check_traceback=False)
        tally.seconds.append(time.monotonic() - began)
        tally.runs += 1
        after = state_number(stored(s3, bucket), BIG)
        if "Traceback" in result.stderr or result.returncode not in (0, 3):
            tally.other.append(f"exit {result.returncode}: {result.stderr[-600:]}")
        elif result.returncode == 0:
            tally.ok += 1
            if f"count is {before + 1}" not in result.stdout:
                tally.other.append(f"ran on a stale state: {result.stdout!r}")
        else:
            tally.failed += 1
            tally.applied += after - before if after == before + 1 else 0
            tally.reasons[result.stderr.strip().splitlines()[-1][:160]] += 1
        if result.returncode == 0 and after == before:
            tally.lost += 1
        tally.duplicated += max(0, after - before - 1)
        tally.lost += max(0, before - after)
        before = after
    proxy.fail()
    tally.final = before
    return tally


def test_runs_under_503s_resets_and_lost_answers_never_lose_or_duplicate_an_update(
    s3, tmp_path, ledger
):
    def one(kind: str) -> tuple[Tally, int]:
        pipeline = make_pipeline(tmp_path / kind)
        with FaultProxy(s3.url) as proxy:
            bucket = use_s3(pipeline, s3, proxy.url)
            counter_step(pipeline, "s3", big=BIG)
            return _counted_runs(pipeline, s3, bucket, proxy, FAULTS[kind]), proxy.injected()

    with ThreadPoolExecutor(2) as pool:  # two at a time: the machine's cores are shared
        results = dict(zip(FAULTS, pool.map(one, FAULTS), strict=True))
    table = "\n".join(
        f"{kind:12} runs {t.runs} ok {t.ok} exit3 {t.failed} applied {t.applied} lost {t.lost} "
        f"dup {t.duplicated} final {t.final} faults {n} {dict(t.reasons)} {t.other}"
        for kind, (t, n) in results.items()
    )
    print("\n" + table)
    for tally, injected in results.values():
        ledger["runs"] += tally.runs
        ledger["faults"] += injected
        ledger["lost"] += tally.lost + tally.duplicated
        assert tally.clean, table
        assert tally.ok + tally.failed == RUNS, table
        assert tally.final == tally.ok + tally.applied, table
    # 503s are retried: at most one run of six may give up
    assert results["503"][0].ok >= RUNS - 1, table


def _bump_then_fail(proxy: FaultProxy, **faults: Any) -> dict[str, str]:
    """The counter step's command switches these faults on once it has written its files."""
    return {"BUMP_THEN_FAIL": json.dumps({"url": proxy.url, "fail": faults})}


def test_every_write_refused_after_the_command_is_exit_3_with_the_old_state_whole(
    s3, pipeline, proxy
):
    bucket = use_s3(pipeline, s3, proxy.url)
    counter_step(pipeline, "s3", big=BIG)
    assert pipeline.run("run").returncode == 0
    env = _bump_then_fail(proxy, rate=1.0, only=["PUT", "DELETE"])
    result = pipeline.run("run", env=env)
    assert "count is 2" in result.stdout
    assert result.returncode == 3, result.stderr
    assert f"s3://{bucket}/{KEY}" in result.stderr
    assert proxy.count("PUT", KEY, 503) == 3  # one try and two retries, then it gave up
    assert state_number(stored(s3, bucket), BIG) == 1
    proxy.fail()
    again = pipeline.run("run", "--lock-wait", "20")  # its lock object expires first
    assert again.returncode == 0, again.stderr
    assert "count is 2" in again.stdout
    assert state_number(stored(s3, bucket), BIG) == 2


def test_sigterm_while_a_save_hangs_exits_143_within_the_grace_period(s3, pipeline, proxy):
    """The native client holds the thread it is called on: the store waits for it on another,
    so a signal is acted on after RUNNER_KILL_GRACE, not after the client's timeouts."""
    use_s3(pipeline, s3, proxy.url)
    counter_step(pipeline, "s3")
    assert pipeline.run("run").returncode == 0
    env = {**_bump_then_fail(proxy, latency=8), "RUNNER_KILL_GRACE": "1"}
    process = pipeline.popen("run", env=env)
    try:
        assert wait_until(lambda: proxy.delayed >= 1, 30), "no request was held"
        process.send_signal(signal.SIGTERM)
        code, out, err = finish(process, 7)  # the grace, the release's 2 s, start-up, slack
    finally:
        process.kill()
    assert code == 143, err
    assert "count is 2" in out and "Traceback" not in err
    assert "stopped waiting for the S3 endpoint to answer PUT" in err


def test_a_save_whose_answer_is_lost_is_read_back_and_succeeds(s3, pipeline, proxy):
    bucket = use_s3(pipeline, s3, proxy.url)
    counter_step(pipeline, "s3")
    assert pipeline.run("run").returncode == 0
    env = _bump_then_fail(proxy, lost_response_rate=1.0, only=["PUT"], suffix=KEY, times=1)
    result = pipeline.run("run", env=env)
    assert result.returncode == 0, result.stderr
    assert proxy.count("PUT", KEY, 0) == 1  # the save landed, its answer never came
    assert state_number(stored(s3, bucket)) == 2
    assert s3.keys(bucket) == [KEY]
    again = pipeline.run("run")
    assert again.returncode == 0, again.stderr
    assert "count is 3" in again.stdout


def test_a_save_reset_before_it_landed_is_exit_3_and_the_next_run_counts_on(s3, pipeline, proxy):
    bucket = use_s3(pipeline, s3, proxy.url)
    counter_step(pipeline, "s3")
    assert pipeline.run("run").returncode == 0
    env = _bump_then_fail(proxy, reset_rate=1.0, only=["PUT"], suffix=KEY, times=1)
    result = pipeline.run("run", env=env)
    assert result.returncode == 3, result.stderr
    assert "cannot save state" in result.stderr
    assert state_number(stored(s3, bucket)) == 1
    again = pipeline.run("run")
    assert again.returncode == 0, again.stderr
    assert "count is 2" in again.stdout


@pytest.mark.parametrize("faults", [{}, {"rate": 0.1, "status": 503}], ids=["plain", "503s"])
def test_concurrent_runs_are_serialised_and_lose_nothing(s3, pipeline, proxy, tmp_path, ledger,
                                                         faults):  # fmt: skip
    n = 5
    bucket = use_s3(pipeline, s3, proxy.url, lease_seconds=5)
    counter_step(pipeline, "s3", big=BIG)
    proxy.fail(**faults, seed=11)
    log = tmp_path / "intervals"
    env = {"BUMP_INTERVALS": str(log), "BUMP_SLEEP": "0.1"}
    processes = [pipeline.popen("run", "--lock-wait", "120", env=env) for _ in range(n)]
    results = [finish(p, 180) for p in processes]
    proxy.fail()
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 3}, [err[-800:] for _, _, err in results]
    ok, failed = codes.count(0), codes.count(3)
    final = state_number(stored(s3, bucket), BIG)
    ledger["lost"] += max(0, ok - final)
    assert ok <= final <= ok + failed, (codes, final)
    if not faults:
        assert codes == [0] * n and final == n
    assert overlaps([s for s in intervals(log) if s[1] is not None]) == []
    assert s3.keys(bucket) == [KEY]  # every lock released
