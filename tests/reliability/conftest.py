"""Fixtures: the loopback API server, the pipeline pointed at it with a short Lease, and a
ledger of what the reliability tests tried, printed at the end of the session."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import LEDGER_OUTPUT, ledger_total, use_kube_api
from tests.kubeapi import FakeKubeAPI

LEDGER: Counter[str] = Counter()
"""runs (runner processes), faults (requests the API server failed, reset or lost the answer
of), signals (sent to runners), lost (updates lost or applied twice: must stay 0), leaked
(secret forms printed: must stay 0), examples (generated inputs tried)."""


def injected_faults(api: FakeKubeAPI) -> int:
    """Requests the API server failed on purpose: resets and lost answers (0), 503s and 429s."""
    return sum(1 for _, _, status in api.requests if status in (0, 429, 503))


@pytest.fixture
def ledger() -> Counter[str]:
    return LEDGER


@pytest.fixture(autouse=True)
def _count_runs(request):
    """Every `pipeline.run`/`pipeline.popen` is one runner process in the ledger."""
    if "pipeline" not in request.fixturenames:
        yield
        return
    pipeline = request.getfixturevalue("pipeline")
    run, popen = pipeline.run, pipeline.popen

    def counted_run(*args, **kwargs):
        LEDGER["runs"] += 1
        return run(*args, **kwargs)

    def counted_popen(*args, **kwargs):
        LEDGER["runs"] += 1
        return popen(*args, **kwargs)

    pipeline.run, pipeline.popen = counted_run, counted_popen
    yield


@pytest.fixture
def api():
    with FakeKubeAPI() as server:
        yield server
        LEDGER["faults"] += injected_faults(server)


@pytest.fixture
def kube(api, pipeline):
    """`runner run` talks to the loopback API server; a killed holder's Lease expires in 2 s."""
    return use_kube_api(pipeline, api, lease_seconds=2)


def pytest_sessionfinish(session):
    """Hand this process's ledger to the summary: the controller's, under pytest-xdist."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[LEDGER_OUTPUT] = dict(LEDGER)
    else:
        ledger_total(session.config).update(LEDGER)
