"""examples/: the Promises modelled on the Kratix marketplace (redis, jenkins, app-stack, kafka,
tekton, knative, mongodb-full, vault, kubeflow-pipelines, namespace), the App Promise and the
PostgreSQL Promise are script-free, validate, and pass their `runner test` cases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_runner_test import runner_test

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PROMISES = sorted(p.parent for p in EXAMPLES.glob("**/steps.d"))
STEP_FILES = sorted(f for folder in PROMISES for f in (folder / "steps.d").glob("*.y*ml"))


def test_the_examples_are_the_app_promise_ten_marketplace_promises_and_postgresql():
    names = {p.relative_to(EXAMPLES).as_posix() for p in PROMISES}
    assert names == {
        "app-promise", "marketplace/redis", "marketplace/jenkins", "marketplace/app-stack",
        "marketplace/kafka", "marketplace/tekton", "marketplace/knative",
        "marketplace/mongodb-full", "marketplace/vault", "marketplace/kubeflow-pipelines",
        "marketplace/namespace", "postgresql",
    }  # fmt: skip


@pytest.mark.parametrize("file", STEP_FILES, ids=lambda f: f.relative_to(EXAMPLES).as_posix())
def test_no_example_step_falls_back_to_a_script(file):
    for doc in yaml.safe_load_all(file.read_text()):
        spec = doc["spec"]
        for group in ("run", "dryRun"):
            for command in spec.get(group) or ():
                assert not (isinstance(command, dict) and "script" in command), file


# tekton's cases write and compare a 1.5 MiB release file (about 4 s).
SLOW = {EXAMPLES / "marketplace/tekton"}


def _param(promise: Path) -> object:
    return pytest.param(promise, marks=[pytest.mark.slow] if promise in SLOW else [])


@pytest.mark.parametrize(
    "promise", [_param(p) for p in PROMISES], ids=lambda p: p.relative_to(EXAMPLES).as_posix()
)
def test_each_promise_validates_and_passes_its_cases(promise, tmp_path):
    checked = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(promise / "steps.d")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    cases = sorted(p for p in (promise / "tests").iterdir() if p.is_dir())
    assert cases
    result = runner_test(tmp_path, *(str(p.relative_to(REPO)) for p in cases))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(cases)} passed, 0 failed" in result.stdout


def _templates(promise: Path) -> dict[str, dict]:
    listed = subprocess.run(
        [sys.executable, "-m", "runner", "templates", "--format", "json"],
        env={"PATH": "/usr/bin:/bin", "RUNNER_STEPS_DIR": str(promise / "steps.d")},
        capture_output=True,
        text=True,
        check=True,
    )
    return {t["name"]: t for t in json.loads(listed.stdout)}


def test_two_promises_share_the_built_in_render_manifests_template_with_their_own_values():
    redis, jenkins = EXAMPLES / "marketplace/redis", EXAMPLES / "marketplace/jenkins"
    assert _templates(redis)["render-manifests"]["usedBy"] == [
        "redis-instance", "redis-dependencies"
    ]  # fmt: skip
    assert _templates(jenkins)["render-manifests"]["usedBy"] == [
        "jenkins-dev-instance", "jenkins-prod-instance"
    ]  # fmt: skip
    given = [
        doc["spec"]["with"]["base"]
        for promise in (redis, jenkins)
        for file in sorted((promise / "steps.d").glob("*.yaml"))
        for doc in yaml.safe_load_all(file.read_text())
        if doc["spec"].get("uses") == "render-manifests"
    ]
    assert given == [
        "../templates/redis-instance.yaml",
        "../templates/redis-operator.yaml",
        "../templates/dev-jenkins-instance.yaml",
        "../templates/prod-jenkins-instance.yaml",
    ]
