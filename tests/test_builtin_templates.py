"""The StepTemplates shipped in the runner (runner/library/): each one valid and usable by name
from any steps folder, and wait-for-condition doing what `kubectl wait` would, through Kratix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from runner.stepfile.step_template_library import BUILTIN_FOLDER
from tests.conftest import Pipeline
from tests.test_run_language import kratix_reads

BUILTINS = sorted(BUILTIN_FOLDER.glob("*.yaml"))
# A `with:` that fits each built-in template's params.
WITH = {
    "terraform-apply": {"module": "../mod", "stateName": "${{ inputs.name }}-state"},
    "terraform-destroy": {"module": "../mod", "stateName": "${{ inputs.name }}-state"},
    "render-manifests": {"base": "../base.yaml", "path": "x.yaml"},
    "wait-for-condition": {"resource": "deployment.apps", "name": "${{ inputs.name }}"},
}


def test_the_library_is_the_four_documented_templates():
    names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in BUILTINS]
    assert sorted(names) == sorted(WITH)


@pytest.mark.parametrize("name", sorted(WITH))
def test_each_built_in_template_is_valid_where_a_step_uses_it(
    pipeline: Pipeline, name: str
) -> None:
    (pipeline.root / "mod").mkdir()
    (pipeline.root / "base.yaml").write_text("kind: ConfigMap\nmetadata: { name: x }\n")
    on = "on: { action: delete }\n" if name == "terraform-destroy" else ""
    pipeline.step(
        "user",
        f"{on}uses: {name}\nwith: {json.dumps(WITH[name])}\ninputs: {{ name: {{ query: .metadata.name }} }}\n",
    )
    result = _validate(pipeline)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: 1 step in 1 file\n"


def _validate(pipeline: Pipeline, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "validate", *options, str(pipeline.steps)],
        cwd=pipeline.work,
        env=pipeline.env,
        capture_output=True,
        text=True,
    )


def _kubectl(pipeline: Pipeline, answer: dict | None) -> dict[str, str]:
    """A kubectl on PATH that prints `answer` as `kubectl get -o json` would (or fails as for a
    missing object), and records its argv."""
    bin_dir = pipeline.root / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kubectl"
    body = (
        f"cat <<'EOF'\n{json.dumps(answer)}\nEOF\n"
        if answer is not None
        else 'echo "Error from server (NotFound)" >&2; exit 1\n'
    )
    script.write_text(f'#!/bin/sh\necho "$@" >> "{pipeline.root}/kubectl.log"\n{body}')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{pipeline.env.get('PATH', '/usr/bin:/bin')}"}


WAIT = """
uses: wait-for-condition
with: { resource: postgresql, name: "db-${{ inputs.name }}", condition: Available, retryAfter: 1m }
inputs: { name: { query: .metadata.name } }
"""


def _calls(pipeline: Pipeline) -> list[str]:
    return (pipeline.root / "kubectl.log").read_text().splitlines()


def test_wait_for_condition_asks_kratix_to_look_again_while_the_condition_is_not_true(
    pipeline: Pipeline,
) -> None:
    pipeline.step("wait-db", WAIT, file="10-wait.yaml")
    pipeline.step("after", "status: { after: ran }\n", file="20-after.yaml")
    env = _kubectl(pipeline, {"status": {"conditions": [{"type": "Available", "status": "False"}]}})
    result = pipeline.run("run", env=env)
    assert result.returncode == 0, result.stderr
    assert kratix_reads(pipeline.metadata / "workflow-control.yaml") == {
        "retryAfter": "1m",
        "message": "postgresql db-my-app is not Available yet",
    }
    assert pipeline.status() == {"ready": False}  # and "after" did not run
    assert _calls(pipeline) == ["get postgresql db-my-app -n default -o json"]


def test_wait_for_condition_lets_the_next_step_run_once_the_condition_is_true(
    pipeline: Pipeline,
) -> None:
    pipeline.step("wait-db", WAIT, file="10-wait.yaml")
    pipeline.step("after", "status: { after: ran }\n", file="20-after.yaml")
    conditions = [{"type": "Ready", "status": "False"}, {"type": "Available", "status": "True"}]
    env = _kubectl(pipeline, {"status": {"conditions": conditions}})
    result = pipeline.run("run", env=env)
    assert result.returncode == 0, result.stderr
    assert not (pipeline.metadata / "workflow-control.yaml").exists()
    assert pipeline.status() == {"ready": True, "after": "ran"}


def test_wait_for_condition_waits_for_an_object_that_does_not_exist_yet(pipeline: Pipeline) -> None:
    pipeline.step("wait-db", WAIT, file="10-wait.yaml")
    env = _kubectl(pipeline, None)
    result = pipeline.run("run", env=env)
    assert result.returncode == 0, result.stderr
    assert kratix_reads(pipeline.metadata / "workflow-control.yaml")["retryAfter"] == "1m"
    assert len(_calls(pipeline)) == 3  # its retry: a flaky API gets three tries


def test_the_steps_folder_overrides_a_built_in_template_of_the_same_name(
    pipeline: Pipeline,
) -> None:
    (pipeline.steps / "mine.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\n"
        "metadata: { name: render-manifests }\n"
        "spec:\n  params: { word: { type: string } }\n  status: { said: '${{ params.word }}' }\n"
    )
    pipeline.step("user", "uses: render-manifests\nwith: { word: hello }\n")
    result = pipeline.run("run", "user")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"said": "hello"}


def test_a_stamped_folder_runs_a_step_on_a_built_in_template_without_the_checks(
    pipeline: Pipeline,
) -> None:
    pipeline.step("user", "uses: render-manifests\nwith: { base: ../base.yaml, path: x.yaml }\n")
    (pipeline.root / "base.yaml").write_text("kind: ConfigMap\nmetadata: { name: x }\n")
    assert _validate(pipeline, "--stamp").returncode == 0
    result = pipeline.run("run", "user", env={"PYTHONVERBOSE": "1"})
    assert result.returncode == 0, result.stderr
    assert "import 'jsonschema'" not in result.stderr  # the checks were not loaded
    assert (pipeline.output / "x.yaml").exists()
