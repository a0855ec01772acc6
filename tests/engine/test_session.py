"""The run session in process: steps decided at their turn, outcomes as values, problems found
before anything runs. Real files and the local store; no subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.base.errors import CommandFailed, InvalidError
from runner.engine.outcomes import Outcome
from tests.engine.world import open_session

LOOK = """
workdir: ../work
run: [{ argv: [sh, -c, 'test -e db && echo true || echo false'], stdout: e.txt }]
outputs: { exists: { file: e.txt, query: . } }
"""
CREATE = """
if: "!(steps.look.outputs.exists)"
workdir: ../work
run: [[sh, -c, 'echo made > db']]
"""


def test_a_step_reading_an_earlier_steps_outputs_waits_until_its_turn(tmp_path: Path) -> None:
    session = open_session(tmp_path, {"10-look": LOOK, "20-create": CREATE})
    look, create = session.prepared
    assert look.waiting_for == frozenset()
    assert create.waiting_for == {"look"} and create.skipped is None  # undecided, not skipped
    result = session.run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE, Outcome.DONE]
    assert (tmp_path / "work" / "db").exists()


def test_a_skipped_step_is_an_outcome_and_its_readers_run(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "db").write_text("there\n")
    report = 'workdir: ../work\nrun: [[sh, -c, "echo [$X] > r.txt"]]\nenv: { X: "${{ steps.create.outputs.y }}" }\n'
    session = open_session(
        tmp_path,
        {
            "10-look": LOOK,
            "20-create": CREATE + "outputs: { y: { jmespath: \"'y'\" } }\n",
            "30-report": report,
        },
    )
    result = session.run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE, Outcome.SKIPPED, Outcome.DONE]
    assert (tmp_path / "work" / "r.txt").read_text() == "[]\n"


def test_an_unmet_wait_hands_the_workflow_to_kratix_and_stops_the_run(tmp_path: Path) -> None:
    session = open_session(
        tmp_path,
        {
            "10-wait": 'run: [[true]]\nwaitFor: { condition: "`false`", retryAfter: 5s }\n',
            "20-after": "workdir: ../work\nrun: [[sh, -c, 'echo ran > after.txt']]\n",
        },
    )
    result = session.run()
    assert result.stopped_by is not None
    assert result.stopped_by.outcome is Outcome.HANDED_TO_KRATIX
    assert len(result.outcomes) == 1
    assert not (tmp_path / "work" / "after.txt").exists()
    assert "retryAfter: 5s" in (tmp_path / "metadata" / "workflow-control.yaml").read_text()


def test_every_steps_problems_are_found_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InvalidError) as raised:
        open_session(
            tmp_path,
            {
                "10-a": "secrets: { A: { env: MISSING_A } }\nrun: [[true]]\n",
                "20-b": "inputs: { x: { query: .spec.x } }\nrun: [[true]]\n",
            },
        )
    messages = " ".join(p.message for p in raised.value.problems)
    assert "MISSING_A" in messages and '"x"' in messages


def test_a_problem_at_a_steps_turn_after_a_command_ran_fails_the_step(tmp_path: Path) -> None:
    session = open_session(
        tmp_path,
        {
            "10-look": LOOK,
            "20-use": 'values: { u: { jmespath: "upper(steps.look.outputs.exists)" } }\nrun: [[true]]\n',
        },
    )
    with pytest.raises(CommandFailed):
        session.run()


def test_a_skip_says_when_its_if_read_a_step_that_recorded_nothing(tmp_path: Path) -> None:
    """`runner run create` alone, in a fresh metadata folder: the skip is right (look's outputs
    read as null), and the log says why, so a Pipeline that forgot `look` shows."""
    body = 'if: "steps.look.outputs.exists == `false`"\nrun: [[true]]\n'
    session = open_session(tmp_path, {"10-look": LOOK, "20-create": body}, select=("create",))
    [outcome] = session.run().outcomes
    assert outcome.outcome is Outcome.SKIPPED
    assert "(look recorded no outputs: they read as null)" in outcome.message
