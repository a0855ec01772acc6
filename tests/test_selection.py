"""Which steps `runner run` chooses: `on` matching, what it says when nothing or the wrong step
matches, the Kratix workflow variables it accepts, and did-you-mean for unknown step names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_run_kratix import marker_step, ran


@pytest.mark.parametrize("workflow", ["resource", "promise"])
def test_a_step_without_on_runs_on_configure_and_never_in_a_delete_workflow(pipeline, workflow):
    marker_step(pipeline, "plain", "", file="10-plain.yaml")
    marker_step(pipeline, "no-action", f"on: {{workflow: {workflow}}}", file="20-no-action.yaml")
    env = {"KRATIX_WORKFLOW_TYPE": workflow, "KRATIX_WORKFLOW_ACTION": "delete"}
    deleted = pipeline.run("run", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert ran(pipeline) == []
    assert "no step matches" in deleted.stderr

    configured = pipeline.run("run", env={**env, "KRATIX_WORKFLOW_ACTION": "configure"})
    assert configured.returncode == 0, configured.stderr
    assert ran(pipeline) == ["plain", "no-action"]


def test_when_no_step_matches_run_says_so_and_why_for_each_step(pipeline):
    marker_step(pipeline, "delete-bucket", "on: {action: delete}", file="90-delete.yaml")
    marker_step(pipeline, "db-only", "on: {promise: db}", file="50-db.yaml")
    result = pipeline.run("run", env={"KRATIX_PROMISE_NAME": "app"})
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == []
    assert (
        "warning: no step matches workflow=resource action=configure promise=app: nothing to run"
        in result.stderr
    )
    assert "db-only: on.promise is db but KRATIX_PROMISE_NAME is app" in result.stderr
    assert (
        "delete-bucket: on.action is delete but KRATIX_WORKFLOW_ACTION is configure"
        in result.stderr
    )


def test_an_empty_steps_folder_is_named_as_the_reason_nothing_ran(pipeline):
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert "nothing to run (the steps folder holds no steps)" in result.stderr


@pytest.mark.parametrize(
    ("on", "env", "expected"),
    [
        ("on: {promise: db}", {"KRATIX_PROMISE_NAME": "app"},
         "on.promise is db but KRATIX_PROMISE_NAME is app"),
        ("on: {promise: db}", {}, "on.promise is db but KRATIX_PROMISE_NAME is not set"),
        ("on: {action: delete}", {}, "on.action is delete but KRATIX_WORKFLOW_ACTION is configure"),
        ("on: {workflow: promise}", {"KRATIX_WORKFLOW_TYPE": "resource"},
         "on.workflow is promise but KRATIX_WORKFLOW_TYPE is resource"),
    ],
)  # fmt: skip
def test_a_named_step_that_does_not_match_runs_with_a_warning_naming_the_field(
    pipeline, on, env, expected
):
    marker_step(pipeline, "named", on)
    result = pipeline.run("run", "named", env=env)
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == ["named"]
    assert f"warning: step named is not meant for this workflow ({expected})" in result.stderr


def test_every_field_that_differs_is_named(pipeline):
    marker_step(pipeline, "named", "on: {action: [delete], promise: db}")
    result = pipeline.run("run", "named", env={"KRATIX_PROMISE_NAME": "app"})
    assert (
        "(on.action is delete but KRATIX_WORKFLOW_ACTION is configure and "
        "on.promise is db but KRATIX_PROMISE_NAME is app)" in result.stderr
    )


@pytest.mark.parametrize(
    ("env", "expected", "hint"),
    [
        ({"KRATIX_WORKFLOW_ACTION": "configur"},
         'KRATIX_WORKFLOW_ACTION is "configur": Kratix sets configure or delete',
         'did you mean "configure"?'),
        ({"KRATIX_WORKFLOW_ACTION": "destroy"},
         'KRATIX_WORKFLOW_ACTION is "destroy": Kratix sets configure or delete',
         "when it is unset, the runner uses configure"),
        ({"KRATIX_WORKFLOW_TYPE": "resources"},
         'KRATIX_WORKFLOW_TYPE is "resources": Kratix sets resource or promise',
         'did you mean "resource"?'),
    ],
)  # fmt: skip
@pytest.mark.parametrize("names", [[], ["plain"]])
def test_a_workflow_kratix_does_not_define_is_exit_2_and_nothing_runs(
    pipeline, env, expected, hint, names
):
    marker_step(pipeline, "plain", "on: {action: [configure, delete]}")
    result = pipeline.run("run", *names, env=env)
    assert result.returncode == 2, result.stderr
    assert f"runner: {expected}\n  hint: {hint}\n" in result.stderr
    assert ran(pipeline) == []


def test_plan_refuses_an_unknown_workflow_action_too(pipeline):
    marker_step(pipeline, "plain", "")
    result = pipeline.run("plan", env={"KRATIX_WORKFLOW_ACTION": "update"})
    assert result.returncode == 2
    assert 'KRATIX_WORKFLOW_ACTION is "update"' in result.stderr


def rbac(pipeline, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(pipeline.steps), *names],
        capture_output=True, text=True, env=pipeline.env, timeout=60,
    )  # fmt: skip


def test_rbac_with_an_unknown_step_suggests_the_closest_name(pipeline):
    marker_step(pipeline, "create-bucket", "")
    result = rbac(pipeline, "create-buckt")
    assert result.returncode == 2
    assert 'no step named "create-buckt"\n  hint: did you mean "create-bucket"?' in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("verb", ["rbac", "run"])
def test_an_unknown_step_with_no_close_name_lists_the_steps(pipeline, verb):
    marker_step(pipeline, "create-bucket", "", file="1.yaml")
    marker_step(pipeline, "render", "", file="2.yaml")
    result = rbac(pipeline, "zzz") if verb == "rbac" else pipeline.run("run", "zzz")
    assert result.returncode == 2
    assert 'no step named "zzz"\n  hint: steps: create-bucket, render' in result.stderr


def test_an_unknown_step_in_an_empty_steps_folder_says_there_are_none(pipeline):
    result = pipeline.run("run", "zzz")
    assert result.returncode == 2
    assert 'no step named "zzz"\n  hint: steps: none' in result.stderr


def test_rbac_of_named_steps_covers_exactly_those(pipeline):
    pipeline.step("cm", "state: {store: configmap, files: [{path: a}]}\nrun: [[true]]")
    pipeline.step("sec", "state: {store: secret, lock: false, files: [{path: a}]}\nrun: [[true]]")
    result = rbac(pipeline, "sec")
    assert result.returncode == 0, result.stderr
    assert "resources: [secrets]" in result.stdout
    assert "configmaps" not in result.stdout and "leases" not in result.stdout
