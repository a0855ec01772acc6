"""Waits on the Kubernetes API and signals, in process: a request to a server that hangs is
ended by a signal within the grace period (Interrupted), or by its own bound (NoAnswer), and
the hung request is left to its thread."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from runner.base.errors import Interrupted
from runner.platform import interrupts
from runner.state.kubeapi import Kube, NoAnswer, load_client


@pytest.fixture
def hung(api, tmp_path):
    config = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.fail(hang=True, resources=["configmaps"])
    kube = Kube(load_client({"KUBECONFIG": str(config)}), attempts=3, backoff=0.05, grace=0)
    yield kube
    interrupts.forget()
    kube.close()


def test_a_signal_ends_a_hung_request_after_the_grace_period(api, hung):
    threading.Timer(0.2, interrupts.record, (signal.SIGTERM,)).start()
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        hung.get("configmaps", "default", "counter")
    took = time.monotonic() - started
    assert caught.value.exit_code == 143
    assert "stopped waiting for the Kubernetes API to answer GET configmaps" in str(caught.value)
    assert interrupts.MIN_API_GRACE <= took < 10  # not the client's 60 s read timeout
    assert api.hanging == 1  # one attempt, not retried after the signal
    # Other resources still answer, within a bound of their own after the signal.
    assert hung.get("leases", "default", "counter", within=2) is None


def test_a_bounded_request_to_a_hung_api_gives_up_with_no_answer(api, hung):
    with pytest.raises(NoAnswer, match="did not answer GET configmaps in default in time"):
        hung.get("configmaps", "default", "counter", within=0.3)


def test_the_hang_ends_when_the_faults_change(api, hung):
    threading.Timer(0.3, api.fail).start()  # the server stops hanging: the connection drops
    assert hung.get("configmaps", "default", "counter") is None  # retried, then answered
