"""Inputs: queries against the request, defaults and checks, and nothing runs when one fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEFAULT_REQUEST

DUMP_ARGS = ["python3", "-c", "import json,sys; json.dump(sys.argv[1:], open('args.json','w'))"]


def dump_step(pipeline, inputs: str, args: list[str]) -> None:
    argv = json.dumps([*DUMP_ARGS, *args])
    pipeline.step(
        "dump",
        f"""
        inputs:
{_indent(inputs, 10)}
        workdir: ../work
        run:
          - {argv}
    """,
    )


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip("\n").splitlines())


def args_seen(pipeline) -> list[str]:
    return json.loads((pipeline.work / "args.json").read_text())


def test_yq_paths_jmespath_and_defaults_resolve_from_the_request(pipeline):
    pipeline.request(
        {
            **DEFAULT_REQUEST,
            "metadata": {
                **DEFAULT_REQUEST["metadata"],
                "labels": {"app.kubernetes.io/name": "shop"},
            },
            "spec": {"ports": [80, 443]},
        }
    )
    dump_step(
        pipeline,
        """
          name: { query: .metadata.name }
          label: { query: '.metadata.labels."app.kubernetes.io/name"' }
          port: { query: '.spec.ports[1]', type: integer }
          tier: { query: .spec.tier, default: small }
          fallback: { query: '.spec.size // "medium"' }
          ports: { jmespath: spec.ports, type: array }
    """,
        [
            "${{ inputs.name }}",
            "${{ inputs.label }}",
            "${{ inputs.port }}",
            "${{ inputs.tier }}",
            "${{ inputs.fallback }}",
            "${{ inputs.ports }}",
        ],
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert args_seen(pipeline) == ["my-app", "shop", "443", "small", "medium", "[80,443]"]


def test_missing_required_input_exits_2_naming_input_and_query_and_runs_nothing(pipeline):
    dump_step(
        pipeline,
        """
          name: { query: .metadata.name }
          size: { query: .spec.size }
    """,
        ["${{ inputs.size }}"],
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert 'input "size": query .spec.size in' in result.stderr
    assert "found nothing, and the input is required" in result.stderr
    assert "dump.yaml:" in result.stderr  # points at the step file's line
    assert not (pipeline.work / "args.json").exists()


def test_enum_type_and_pattern_violations_are_all_reported_before_anything_runs(pipeline):
    pipeline.request(
        {
            **DEFAULT_REQUEST,
            "metadata": {"name": "Bad_Name"},
            "spec": {"tier": "huge", "replicas": "three"},
        }
    )
    dump_step(
        pipeline,
        """
          name: { query: .metadata.name, pattern: "^[a-z0-9-]+$" }
          tier: { query: .spec.tier, enum: [small, large] }
          replicas: { query: .spec.replicas, type: integer }
    """,
        ["${{ inputs.name }}"],
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert '"Bad_Name" does not match pattern' in result.stderr
    assert '"huge" is not one of "small", "large"' in result.stderr
    assert 'input "replicas"' in result.stderr and "expected integer" in result.stderr
    assert not (pipeline.work / "args.json").exists()


def test_optional_input_without_default_renders_empty(pipeline):
    dump_step(
        pipeline,
        """
          note: { query: .spec.note, required: false }
    """,
        ["[${{ inputs.note }}]"],
    )
    assert pipeline.run("run").returncode == 0
    assert args_seen(pipeline) == ["[]"]


def test_request_that_is_not_a_mapping_exits_2(pipeline):
    dump_step(pipeline, "name: { query: .metadata.name }", ["x"])
    pipeline.request("- just\n- a list\n")
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "the request must be one YAML mapping" in result.stderr


def test_malformed_request_reports_file_and_line(pipeline):
    dump_step(pipeline, "name: { query: .metadata.name }", ["x"])
    pipeline.request("metadata:\n  name: [unclosed\n")
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "object.yaml:3:1: invalid YAML" in result.stderr


def test_missing_request_file_exits_2_with_a_hint(pipeline):
    dump_step(pipeline, "name: { query: .metadata.name }", ["x"])
    (pipeline.input / "object.yaml").unlink()
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "no request at" in result.stderr and "--input" in result.stderr


def test_invalid_step_file_exits_2_before_reading_the_request(pipeline):
    pipeline.step(
        "broken",
        """
        run:
          - [echo, "${{ inputs.nope }}"]
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert 'unknown input "nope"' in result.stderr


def test_unknown_step_name_suggests_the_closest(pipeline):
    dump_step(pipeline, "name: { query: .metadata.name }", ["x"])
    result = pipeline.run("run", "dumb")
    assert result.returncode == 2
    assert 'no step named "dumb"' in result.stderr and 'did you mean "dump"?' in result.stderr


def validate_stamp(pipeline):
    command = [sys.executable, "-m", "runner", "validate", "--stamp", str(pipeline.steps)]
    return subprocess.run(command, capture_output=True, text=True, env=pipeline.env)


def test_validate_stamp_lets_runs_skip_the_checks_until_a_file_changes(pipeline):
    dump_step(pipeline, "name: { query: .metadata.name }", ["${{ inputs.name }}"])
    stamped = validate_stamp(pipeline)
    assert stamped.returncode == 0, stamped.stderr
    assert (pipeline.steps / ".runner-validated").is_file()
    probe = pipeline.run("run", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert probe.returncode == 0
    assert "| jsonschema" not in probe.stderr  # the schema check (and its import) was skipped
    # An edited file is checked in full again: the stamp only vouches for the content it saw.
    text = (pipeline.steps / "dump.yaml").read_text().replace("inputs.name", "inputs.nmae")
    (pipeline.steps / "dump.yaml").write_text(text)
    edited = pipeline.run("run")
    assert edited.returncode == 2 and 'unknown input "nmae"' in edited.stderr


def test_validate_stamp_is_written_only_for_a_valid_folder(pipeline):
    pipeline.step("broken", "run: [[echo, '${{ inputs.x }}']]")
    result = validate_stamp(pipeline)
    assert result.returncode == 2
    assert not (pipeline.steps / ".runner-validated").exists()


def test_a_stamp_from_another_build_of_the_runner_is_not_trusted(tmp_path):
    # The fingerprint covers the checks' code, not only the version: a copy of the package
    # with one edited check must not trust what this build recorded.
    import runner

    copy = tmp_path / "copy"
    shutil.copytree(Path(runner.__file__).parent, copy / "runner")
    fingerprint = [
        sys.executable,
        "-c",
        "from runner.stepfile.stamp import fingerprint as f; print(f())",
    ]

    def of(root: Path) -> str:
        env = {**os.environ, "PYTHONPATH": str(root)}
        # cwd too: `python -c` puts the working folder first on sys.path.
        run = subprocess.run(
            fingerprint, capture_output=True, text=True, env=env, cwd=root, check=True
        )
        return run.stdout

    before = of(copy)
    checks = copy / "runner" / "stepfile" / "checks.py"
    checks.write_text(checks.read_text() + "\n# a changed rule\n")
    assert of(copy) != before
    assert before == of(Path(runner.__file__).parent.parent)  # the same code, the same fingerprint
