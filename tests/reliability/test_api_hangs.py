"""SIGTERM and SIGINT while the Kubernetes API hangs (takes requests and never answers): the
run stops within the grace period (RUNNER_KILL_GRACE, 1 s here) plus a bounded release of the
Lease, not after the client's 60 s timeout times its attempts. It exits 143 (130), releases
the Lease if the API answers that, else the Lease expires (RUNNER_LEASE_SECONDS, 2 s here),
and the stored state is the old one, whole, for the next run."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.reliability.helpers import (
    counter_step,
    finish,
    lease_holder,
    state_number,
    stored,
    wait_until,
)

# Each test waits out a grace period, and one a Lease's expiry.
pytestmark = pytest.mark.slow

GRACE = {"RUNNER_KILL_GRACE": "1"}
BOUND = 12  # seconds: the grace, the release's bound (2 s after a signal), start-up, slack


def _stop_while_hanging(pipeline, kube, ledger, signum, env=None):
    process = pipeline.popen("run", "--lock-wait", "5", env={**GRACE, **(env or {})})
    try:
        assert wait_until(lambda: kube.hanging >= 1, 30), "no request hung"
        process.send_signal(signum)
        sent = time.monotonic()
        ledger["signals"] += 1
        result = finish(process, BOUND)
        print(f"exited {result[0]} {time.monotonic() - sent:.2f}s after {signum.name}")
        return result
    finally:
        process.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_restoring_from_a_hung_api_exits_and_releases_the_lease(
    kube, pipeline, tmp_path, ledger, signum
):
    """The Lease is taken, then reading the state hangs: the reviewer's case, still running
    200 s later with the Lease held."""
    counter_step(pipeline, "configmap")
    assert pipeline.run("run").returncode == 0
    kube.fail(hang=True, resources=["configmaps"])
    code, out, err = _stop_while_hanging(pipeline, kube, ledger, signum)
    assert code == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], err
    assert "stopped waiting for the Kubernetes API to answer GET configmaps" in err
    assert "count is" not in out and "Traceback" not in err
    assert lease_holder(kube) is None, "the Lease was not released"
    kube.fail()
    assert state_number(stored(kube, tmp_path)) == 1
    again = pipeline.run("run", "--lock-wait", "0")  # no waiting: the Lease is free
    assert again.returncode == 0 and "count is 2" in again.stdout, again.stderr


def test_sigterm_while_a_save_hangs_exits_143_and_releases_the_lease(kube, pipeline, tmp_path,
                                                                     ledger):
    counter_step(pipeline, "configmap")
    assert pipeline.run("run").returncode == 0
    then = json.dumps({"url": kube.url, "fail": {"hang": True, "resources": ["configmaps"]}})
    code, out, err = _stop_while_hanging(pipeline, kube, ledger, signal.SIGTERM,
                                         {"BUMP_THEN_FAIL": then})
    assert code == 143, err
    assert "count is 2" in out  # the command ran; its save never got an answer
    assert "stopped waiting for the Kubernetes API to answer PUT configmaps" in err
    assert lease_holder(kube) is None, "the Lease was not released"
    kube.fail()
    assert state_number(stored(kube, tmp_path)) == 1  # the hung write was never done
    again = pipeline.run("run", "--lock-wait", "0")
    assert again.returncode == 0 and "count is 2" in again.stdout, again.stderr


def test_sigterm_when_the_api_hangs_even_the_release_exits_143_and_the_lease_expires(
    kube, pipeline, tmp_path, ledger
):
    counter_step(pipeline, "configmap")
    assert pipeline.run("run").returncode == 0
    then = json.dumps({"url": kube.url, "fail": {"hang": True}})
    code, out, err = _stop_while_hanging(pipeline, kube, ledger, signal.SIGTERM,
                                         {"BUMP_THEN_FAIL": then})
    assert code == 143, err
    assert "count is 2" in out and "Traceback" not in err
    kube.fail()
    assert lease_holder(kube) is not None  # the release hung too: the Lease is left to expire
    again = pipeline.run("run", "--lock-wait", "30")  # it expires within RUNNER_LEASE_SECONDS
    assert again.returncode == 0 and "count is 2" in again.stdout, again.stderr
