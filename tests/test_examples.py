"""The example App Promise, the pipeline image's Dockerfile and the authoring tools fit together."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runner.stepfile.loader import load_steps
from tests.conftest import REPO

APP = REPO / "examples" / "app-promise"
VENV_BIN = Path(sys.executable).parent
SCHEMA = REPO / "schemas" / "step.schema.json"
DOCKERFILES = [REPO / "Dockerfile", APP / "Dockerfile"]
KRATIX = REPO / "tests" / "data" / "kratix"


@pytest.fixture(scope="module")
def promise() -> dict:
    return yaml.safe_load((APP / "promise.yaml").read_text())


@pytest.fixture(scope="module")
def image_steps():
    """The steps in the App pipeline image's /steps.d: the shipped ones plus the Promise's own."""
    loaded = load_steps([REPO / "steps.d", APP / "steps.d"])
    assert not loaded.problems, [p.format() for p in loaded.problems]  # names unique, all valid
    return {step.name: step for step in loaded.steps}


def pipelines(promise: dict):
    for action in ("configure", "delete"):
        for pipeline in promise["spec"]["workflows"]["resource"][action]:
            yield action, pipeline


def test_the_promise_is_a_kratix_promise_for_apps(promise):
    assert promise["apiVersion"] == "platform.kratix.io/v1alpha1"
    assert promise["kind"] == "Promise" and promise["metadata"]["name"] == "app"
    crd = promise["spec"]["api"]
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "apps.workshop.kratix.io"
    assert crd["spec"]["group"] == "workshop.kratix.io" and crd["spec"]["names"]["kind"] == "App"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert schema["properties"]["image"]["type"] == "string" and schema["required"] == ["image"]
    assert schema["properties"]["service"]["properties"]["port"]["type"] == "integer"


def test_both_workflows_are_kratix_pipelines(promise):
    actions = {action for action, _ in pipelines(promise)}
    assert actions == {"configure", "delete"}
    for _, pipeline in pipelines(promise):
        assert pipeline["apiVersion"] == "platform.kratix.io/v1alpha1"
        assert pipeline["kind"] == "Pipeline"
        assert pipeline["spec"]["containers"]


def test_every_container_runs_a_step_of_the_image_meant_for_its_workflow(promise, image_steps):
    named = []
    for action, pipeline in pipelines(promise):
        for container in pipeline["spec"]["containers"]:
            command = container["command"]
            assert command[:2] == ["runner", "run"] and len(command) == 3, command
            step = image_steps.get(command[2])
            assert step is not None, f"{command[2]} is not in the image: {sorted(image_steps)}"
            assert step.trigger.matches("resource", action, "app"), (command[2], action)
            named.append(command[2])
    assert {"create-bucket", "delete-bucket", "render-manifests"} <= set(named)


def test_the_minio_secret_reaches_the_steps_under_the_names_they_read(promise, image_steps):
    keys = {"MINIO_USER": "username", "MINIO_PASSWORD": "password", "MINIO_ENDPOINT": "endpoint"}
    for _, pipeline in pipelines(promise):
        for container in pipeline["spec"]["containers"]:
            step = image_steps[container["command"][2]]
            wanted = {s.env for s in step.secrets if s.env and s.required}
            given = {}
            for item in container.get("env", []):
                ref = item["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "app-promise-minio-creds"
                given[item["name"]] = ref["key"]
            assert set(given) == {s.env for s in step.secrets if s.env}
            assert wanted <= set(given)
            assert all(keys[name] == key for name, key in given.items())


def test_pipelines_with_kubernetes_state_get_configmap_and_lease_permissions(promise, image_steps):
    for _, pipeline in pipelines(promise):
        steps = [image_steps[c["command"][2]] for c in pipeline["spec"]["containers"]]
        if not any(s.state.store == "configmap" for s in steps):
            continue
        granted = {
            (group, resource): set(rule["verbs"])
            for rule in pipeline["spec"]["rbac"]["permissions"]
            for group in rule["apiGroups"] for resource in rule["resources"]
        }  # fmt: skip
        assert granted[("", "configmaps")] >= {"get", "create", "update", "delete"}
        assert granted[("coordination.k8s.io", "leases")] >= {"get", "create", "update", "delete"}


def test_the_example_steps_validate_and_point_editors_at_the_schema():
    result = subprocess.run([sys.executable, "-m", "runner", "validate", str(APP / "steps.d")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for path in [*(REPO / "steps.d").glob("*.yaml"), *(APP / "steps.d").glob("*.yaml")]:
        first = path.read_text().splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert match, f"{path}: no yaml-language-server line"
        assert (path.parent / match.group(1)).resolve() == SCHEMA.resolve()


def test_the_published_schema_works_with_check_jsonschema():
    tool = VENV_BIN / "check-jsonschema"
    assert tool.exists(), f"{tool}: not installed (the test extra): run make install"
    files = [*(REPO / "steps.d").glob("*.yaml"), *(APP / "steps.d").glob("*.yaml")]
    result = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA), *sorted(map(str, files))],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pre_commit_hook_validates_step_files():
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "runner-validate")
    assert hook["entry"].split()[:2] == ["runner", "validate"] and hook["language"] == "python"
    files = re.compile(hook["files"])
    assert files.search("steps.d/10-create-bucket.yaml")
    assert files.search("examples/app-promise/steps.d/20-render-manifests.yml")
    assert not files.search("steps.d/README.md") and not files.search("tests/steps.yaml")
    # The whole folder is validated (names are unique across it), so no file names are passed.
    assert hook["pass_filenames"] is False


# -- the Dockerfiles ---------------------------------------------------------------------------
def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    result = []
    for word, rest in instructions(dockerfile):
        if word in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            result.append((args[:-1], args[-1]))
    return result


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_passes_hadolint(dockerfile):
    tool = shutil.which("hadolint") or str(VENV_BIN / "hadolint")
    assert Path(tool).exists(), "hadolint is not installed (the test extra): run make install"
    result = subprocess.run([tool, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_copies_paths_that_exist_and_that_dockerignore_lets_through(dockerfile):
    context = dockerfile.parent
    ignore = (context / ".dockerignore").read_text().splitlines()
    let_through = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert copies(dockerfile)
    for sources, _ in copies(dockerfile):
        for source in sources:
            assert (context / source).exists(), f"{dockerfile}: COPY {source}: no such path"
            if "*" in ignore:
                name = source.rstrip("/").lstrip("./")
                assert name in let_through, f".dockerignore drops {source}"


def test_the_image_is_slim_python_pinned_terraform_and_a_non_root_runner():
    steps = instructions(REPO / "Dockerfile")
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.1[12]-slim-bookworm", froms[0])
    assert re.fullmatch(r"1\.9\.\d+", args["TERRAFORM_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", args["TERRAFORM_SHA256_AMD64"])
    run = " ".join(rest for word, rest in steps if word == "RUN")
    assert "releases.hashicorp.com/terraform/${TERRAFORM_VERSION}" in run
    assert "sha256sum --check" in run
    assert re.search(r"pip install (\.|/tmp/runner-src)( |$)", run) and "[test]" not in run
    user = [rest for word, rest in steps if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["runner"]') in steps


def test_the_shipped_steps_find_their_terraform_modules_in_the_image():
    destinations = {dest.rstrip("/"): sources for sources, dest in copies(REPO / "Dockerfile")}
    assert destinations["/steps.d"] == ["steps.d/"]
    loaded = load_steps([REPO / "steps.d"])
    for step in loaded.steps:
        in_image = posixpath.normpath(posixpath.join("/steps.d", step.workdir))
        root = "/" + in_image.strip("/").split("/")[0]
        assert root in destinations, f"{step.name}: {in_image} is not in the image"
        source = REPO / destinations[root][0] / posixpath.relpath(in_image, root)
        assert source.is_dir(), f"{step.name}: {source} does not exist"


def test_the_app_image_adds_the_promise_steps_to_the_runner_image():
    steps = instructions(APP / "Dockerfile")
    assert [rest for word, rest in steps if word == "FROM"] == ["${RUNNER_IMAGE}"]
    assert (["steps.d/"], "/steps.d/") in copies(APP / "Dockerfile")


def test_each_pipeline_grants_what_runner_rbac_says_its_steps_need(promise, tmp_path):
    steps = tmp_path / "steps.d"  # the App image's /steps.d
    shutil.copytree(REPO / "steps.d", steps)
    shutil.copytree(APP / "steps.d", steps, dirs_exist_ok=True)
    for _, pipeline in pipelines(promise):
        names = [c["command"][2] for c in pipeline["spec"]["containers"]]
        result = subprocess.run(
            [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(steps), *names],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        needed = (yaml.safe_load(result.stdout) or {}).get("rbac", {}).get("permissions", [])
        granted = pipeline["spec"].get("rbac", {}).get("permissions", [])
        for rule in needed:
            assert any(
                set(rule["apiGroups"]) <= set(g["apiGroups"])
                and set(rule["resources"]) <= set(g["resources"])
                and set(rule["verbs"]) <= set(g["verbs"])
                for g in granted
            ), f"{pipeline['metadata']['name']} lacks {rule}"


# -- promise.yaml is what the steps make, and what Kratix accepts ------------------------------
def test_promise_yaml_is_what_generate_py_writes_from_the_steps():
    result = subprocess.run([sys.executable, str(APP / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_promise_yaml_passes_the_kratix_promise_crd_schema(promise):
    from jsonschema import Draft202012Validator

    # An OpenAPI v3 schema reads as JSON Schema here: it has no `nullable`, and validators
    # ignore the x-kubernetes-* keywords (preserve-unknown-fields is JSON Schema's default).
    schema = yaml.safe_load((KRATIX / "promise.openapi.yaml").read_text())
    assert "nullable" not in json.dumps(schema)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(promise)]
    assert not errors, errors


def test_the_promise_pipelines_pass_the_kratix_pipeline_schema(promise):
    from tests.test_pipeline_command import kratix_problems

    for _, pipeline in pipelines(promise):
        assert not kratix_problems(pipeline), kratix_problems(pipeline)
