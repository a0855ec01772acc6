"""Writes that land while every answer to them is lost (the API server applied the write,
then the connection dropped, on each retry too): the runner reads back what is stored, and a
write that is there, with its own save id or its own chunk content, is a success, not exit 3."""

from __future__ import annotations

import json

import pytest

from tests.reliability.helpers import counter_step, lease_holder, state_number, stored

BIG = 1_200_000  # two chunk objects

pytestmark = pytest.mark.slow  # three runs each, with retries


@pytest.mark.parametrize("big", [0, BIG], ids=["one-object", "chunked"])
def test_a_save_whose_every_answer_is_lost_is_read_back_and_succeeds(kube, pipeline, tmp_path,
                                                                      big):
    counter_step(pipeline, "configmap", big=big)
    assert pipeline.run("run").returncode == 0
    # From the end of the command on: every create and update lands, and no answer comes back
    # (the retries' 409s are lost too): two attempts each, both unanswered.
    fail = {"lost_response_rate": 1.0, "only": ["create", "update"]}
    then = json.dumps({"url": kube.url, "fail": fail})
    result = pipeline.run("run", env={"BUMP_THEN_FAIL": then, "RUNNER_KUBE_ATTEMPTS": "2"})
    assert result.returncode == 0, result.stderr
    assert "count is 2" in result.stdout
    assert kube.count("PUT", "/configmaps/counter", 0) == 2  # both attempts went unanswered
    assert state_number(stored(kube, tmp_path), big) == 2
    assert lease_holder(kube) is None  # the release landed too
    kube.fail()
    again = pipeline.run("run")
    assert again.returncode == 0, again.stderr
    assert "count is 3" in again.stdout


def test_a_save_that_never_landed_still_exits_3(kube, pipeline, tmp_path):
    """Read back, the state is the old one: the save failed, and says so."""
    counter_step(pipeline, "configmap")
    assert pipeline.run("run").returncode == 0
    then = json.dumps({"url": kube.url, "fail": {"reset_rate": 1.0, "only": ["update"]}})
    result = pipeline.run("run", env={"BUMP_THEN_FAIL": then, "RUNNER_KUBE_ATTEMPTS": "2"})
    assert result.returncode == 3, result.stderr
    assert "did not answer" in result.stderr
    assert state_number(stored(kube, tmp_path)) == 1
