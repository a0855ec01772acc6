"""The stamp's index: a stamped folder's runs parse only the files of the steps they run (and
of the templates those use), and any change to the folder makes them load it all again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HEADER = "apiVersion: runner.kratix.dev/v1alpha1\n"


def touch_step(pipeline, name: str, on: str = "", file: str | None = None) -> Path:
    """A step that touches a file named after it in the work folder."""
    return pipeline.step(name, f"{on}\nworkdir: ../work\nrun:\n  - [touch, ran-{name}]\n", file)


def stamp(pipeline) -> None:
    command = [sys.executable, "-m", "runner", "validate", "--stamp", str(pipeline.steps)]
    result = subprocess.run(command, capture_output=True, text=True, env=pipeline.env)
    assert result.returncode == 0, result.stderr


def break_unseen(path: Path) -> None:
    """Make a step file invalid YAML without changing its size or mtime: the index can't tell,
    so a run that reads it fails, and one that doesn't succeeds."""
    before = path.stat()
    data = path.read_bytes()
    path.write_bytes(b"\t[" + data[2:])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def ran(pipeline) -> set[str]:
    return {p.name.removeprefix("ran-") for p in pipeline.work.glob("ran-*")}


@pytest.fixture
def stamped(pipeline):
    """Three steps, stamped: `delete-only` runs for the delete action only; then `broken.yaml`
    is made invalid behind the index's back."""
    touch_step(pipeline, "first")
    touch_step(pipeline, "second")
    touch_step(pipeline, "delete-only", "on: { action: delete }")
    touch_step(pipeline, "broken", "on: { action: delete }")
    stamp(pipeline)
    record = json.loads((pipeline.steps / ".runner-validated").read_text())
    assert record["format"] == 2
    index = record["index"]
    assert index["paths"] == ["broken.yaml", "delete-only.yaml", "first.yaml", "second.yaml"]
    assert len(index["sizes"]) == len(index["mtimes"]) == len(index["digests"]) == 4
    assert index["docs"][0] == [0, "Step", "broken", 0, None]
    assert index["on"] == [{"action": "delete"}, None]  # each distinct `on` once
    break_unseen(pipeline.steps / "broken.yaml")
    return pipeline


def test_a_named_step_runs_without_reading_the_other_files(stamped):
    result = stamped.run("run", "second")
    assert result.returncode == 0, result.stderr
    assert ran(stamped) == {"second"}


def test_steps_chosen_by_their_on_run_without_reading_the_other_files(stamped):
    result = stamped.run("run")
    assert result.returncode == 0, result.stderr
    assert ran(stamped) == {"first", "second"}
    # For the delete action, broken.yaml is needed: its content no longer matches its digest,
    # so the whole folder is loaded and checked, with the usual message.
    result = stamped.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 2
    assert "broken.yaml:1:1: invalid YAML" in result.stderr
    assert ran(stamped) == {"first", "second"}


def test_mtimes_cut_to_whole_seconds_as_in_a_pulled_image_still_use_the_index(stamped):
    # Layer tarballs may keep only seconds (docker push/save, kaniko): the pod's files then
    # have no nanoseconds. Still the same files: the broken one is not read.
    for path in stamped.steps.glob("*.yaml"):
        info = path.stat()
        whole = info.st_mtime_ns - info.st_mtime_ns % 1_000_000_000
        os.utime(path, ns=(info.st_atime_ns, whole))
    result = stamped.run("run", "second")
    assert result.returncode == 0, result.stderr
    # Seconds away is another mtime: the whole folder is loaded.
    path = stamped.steps / "first.yaml"
    info = path.stat()
    os.utime(
        path,
        ns=(info.st_atime_ns, info.st_mtime_ns - info.st_mtime_ns % 1_000_000_000 + 2_000_000_000),
    )
    result = stamped.run("run", "second")
    assert result.returncode == 2 and "broken.yaml:1:1: invalid YAML" in result.stderr


@pytest.mark.parametrize("change", ["edited", "added", "removed"])
def test_any_change_to_the_folder_loads_it_all(stamped, change):
    if change == "edited":
        path = stamped.steps / "first.yaml"
        path.write_text(path.read_text().replace("ran-first", "ran-first-edited"))
    elif change == "added":
        (stamped.steps / "sub").mkdir()
        touch_step(stamped, "third", file="sub/third.yaml")
    else:
        (stamped.steps / "delete-only.yaml").unlink()
    result = stamped.run("run", "second")
    assert result.returncode == 2
    assert "broken.yaml:1:1: invalid YAML" in result.stderr
    assert not ran(stamped)


def test_a_changed_file_of_the_same_size_and_mtime_is_read_as_it_is_now(stamped):
    path = stamped.steps / "second.yaml"
    before = path.stat()
    path.write_text(path.read_text().replace("ran-second", "ran-sec0nd"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = stamped.run("run", "second")
    # Its digest differs from the index's: the whole folder is loaded, broken.yaml with it.
    assert result.returncode == 2
    assert "broken.yaml:1:1: invalid YAML" in result.stderr


def test_an_unknown_step_name_gets_the_usual_did_you_mean(pipeline):
    touch_step(pipeline, "first")
    touch_step(pipeline, "second")
    stamp(pipeline)
    result = pipeline.run("run", "secnod")
    assert result.returncode == 2
    assert 'no step named "secnod"' in result.stderr and 'did you mean "second"?' in result.stderr


def test_when_nothing_matches_the_warning_is_the_one_without_a_stamp(pipeline):
    touch_step(pipeline, "first", "on: { action: delete }")
    touch_step(pipeline, "second", "on: { workflow: promise }")
    unstamped = pipeline.run("run")
    stamp(pipeline)
    stamped = pipeline.run("run")
    assert unstamped.returncode == stamped.returncode == 0
    assert "no step matches workflow=resource action=configure" in stamped.stderr
    assert "first: on.action is delete" in stamped.stderr, stamped.stderr
    assert stamped.stderr == unstamped.stderr


def test_a_stamp_of_the_first_format_is_not_trusted(pipeline):
    touch_step(pipeline, "first")
    stamp(pipeline)
    path = pipeline.steps / ".runner-validated"
    record = json.loads(path.read_text())
    old = {"fingerprint": record["fingerprint"], "files": record["index"]["digests"]}
    path.write_text(json.dumps(old))
    probe = pipeline.run("run", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert probe.returncode == 0, probe.stderr
    assert "| jsonschema" in probe.stderr  # checked in full: the stamp was not believed


TEMPLATE = """\
kind: StepTemplate
metadata:
  name: toucher
spec:
  params:
    file: { type: string }
  on: { action: [configure, delete] }
  workdir: ../../work  # relative to this file, in lib/
  run:
    - [touch, "ran-${{ params.file }}"]
"""


def uses_step(name: str, uses: str) -> str:
    return (
        f"{HEADER}kind: Step\nmetadata:\n  name: {name}\n"
        f"spec:\n  uses: {uses}\n  with: {{ file: {name} }}\n"
    )


def test_the_templates_a_step_uses_are_read_by_name_and_by_path(pipeline):
    (pipeline.steps / "lib").mkdir()
    (pipeline.steps / "lib" / "toucher.yaml").write_text(HEADER + TEMPLATE)
    (pipeline.steps / "by-name.yaml").write_text(uses_step("by-name", "toucher"))
    (pipeline.steps / "by-path.yaml").write_text(uses_step("by-path", "./lib/toucher.yaml"))
    touch_step(pipeline, "broken")
    stamp(pipeline)
    record = json.loads((pipeline.steps / ".runner-validated").read_text())
    index = record["index"]
    docs = {doc[2]: doc for doc in index["docs"]}
    assert docs["toucher"][1:] == ["StepTemplate", "toucher", None, None]
    assert docs["by-name"][4] == "toucher" and docs["by-path"][4] == "./lib/toucher.yaml"
    # A step's `on` as it runs: its template's, merged in.
    assert index["on"][docs["by-name"][3]] == {"action": ["configure", "delete"]}
    break_unseen(pipeline.steps / "broken.yaml")
    for name in ("by-name", "by-path"):
        result = pipeline.run("run", name)
        assert result.returncode == 0, result.stderr
    # No names: the steps whose `on` (from their template) matches the delete action.
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == {"by-name", "by-path"}


def state_step(pipeline, name: str, secret: str) -> None:
    pipeline.step(
        name,
        f"""
        secrets:
          TOKEN: {{ env: TOKEN, secretKeyRef: {{ name: {secret}, key: token }} }}
        state:
          store: configmap
          name: {name}-state
          files: [{{ path: s.txt, key: s }}]
        workdir: ../work
        run:
          - [touch, s.txt]
        """,
    )


def steps_only(pipeline, verb: str, *argv: str, env: dict[str, str] | None = None):
    """`runner VERB --steps-dir STEPS ARGV`: rbac and pipeline take no Kratix folders."""
    command = [sys.executable, "-m", "runner", verb, "--steps-dir", str(pipeline.steps), *argv]
    env = {**pipeline.env, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=pipeline.work)


def test_rbac_and_pipeline_read_only_the_steps_they_print(pipeline):
    state_step(pipeline, "keeper", "keeper-token")
    touch_step(pipeline, "other", "on: { action: delete }")
    touch_step(pipeline, "broken", "on: { action: delete }")
    stamp(pipeline)
    break_unseen(pipeline.steps / "broken.yaml")
    rbac = steps_only(pipeline, "rbac", "keeper")
    assert rbac.returncode == 0, rbac.stderr
    assert "running: keeper" in rbac.stdout and "configmaps" in rbac.stdout
    named = steps_only(pipeline, "pipeline", "keeper", "other", "--image", "img:1")
    assert named.returncode == 0, named.stderr
    containers = yaml.safe_load(named.stdout)["spec"]["containers"]
    assert [c["command"] for c in containers] == [["runner", "run", n] for n in ("keeper", "other")]
    chosen = steps_only(pipeline, "pipeline", "--image", "img:1")  # those for resource/configure
    assert chosen.returncode == 0, chosen.stderr
    assert "keeper-token" in chosen.stdout and "other" not in chosen.stdout
    # All steps: every file is needed, broken.yaml too, and its digest no longer matches.
    every = steps_only(pipeline, "rbac")
    assert every.returncode == 2 and "broken.yaml:1:1: invalid YAML" in every.stderr
