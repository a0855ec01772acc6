"""examples/postgresql: its promise.yaml is a Kratix Promise whose containers run its steps with
the permissions they need, and its steps keep the owner's password out of everything they
write. (Its `runner test` cases run in tests/test_marketplace_examples.py.)"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from runner.stepfile.loader import load_steps
from tests.conftest import REPO
from tests.test_examples import KRATIX, pipelines

PROMISE = REPO / "examples" / "postgresql"


@pytest.fixture(scope="module")
def promise() -> dict[str, Any]:
    return yaml.safe_load((PROMISE / "promise.yaml").read_text())  # type: ignore[no-any-return]


def test_the_promise_passes_the_kratix_schemas(promise: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    from tests.test_pipeline_command import kratix_problems

    schema = yaml.safe_load((KRATIX / "promise.openapi.yaml").read_text())
    assert not [e.message for e in Draft202012Validator(schema).iter_errors(promise)]
    for _, pipeline in pipelines(promise):
        assert not kratix_problems(pipeline), kratix_problems(pipeline)


def test_each_container_runs_a_step_of_its_workflow_with_the_permissions_it_needs(
    promise: dict[str, Any],
) -> None:
    steps = {s.name: s for s in load_steps([PROMISE / "steps.d"]).steps}
    for action, pipeline in pipelines(promise):
        names = [c["command"] for c in pipeline["spec"]["containers"]]
        assert all(n[:2] == ["runner", "run"] and len(n) == 3 for n in names)
        assert all(action in steps[n[2]].trigger.actions for n in names)
        result = subprocess.run(
            [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(PROMISE / "steps.d"),
             *(n[2] for n in names)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        needed = yaml.safe_load(result.stdout)["rbac"]["permissions"]
        assert pipeline["spec"]["rbac"]["permissions"] == needed


def test_the_password_is_generated_kept_in_a_secret_and_reaches_psql_on_stdin_only() -> None:
    steps = {s.name: s for s in load_steps([PROMISE / "steps.d"]).steps}
    for name in ("create-database", "drop-database"):
        step = steps[name]
        assert [s.name for s in step.generated] == ["DB_PASSWORD"]
        assert step.state.store == "secret"
        assert step.state.name == "${{ inputs.name }}-postgresql"
    create = steps["create-database"]
    assert create.run[0].stdin is not None and "secrets.DB_PASSWORD" in create.run[0].stdin
    assert not any("DB_PASSWORD" in " ".join(c.argv or ()) for c in create.run)
