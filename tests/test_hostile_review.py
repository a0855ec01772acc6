"""What a hostile review found, each kept fixed: durations Go can't hold, a broken local store,
another container's unreadable workflow-control.yaml, state files outside the workdir."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Pipeline


@pytest.mark.parametrize(
    "field",
    [
        'timeout: "99999999999999999999h"',
        'waitFor: { condition: "`false`", retryAfter: "9999999999999h" }',
    ],
)
def test_a_duration_go_cannot_hold_is_a_validate_error(pipeline: Pipeline, field: str) -> None:
    pipeline.step("a", f'run: [["true"]]\n{field}\n')
    result = pipeline.validate()
    assert result.returncode == 2, result.stderr
    assert "duration too long" in result.stderr and "at most 9223372036s" in result.stderr


def test_an_unreadable_retry_after_left_by_another_container_is_exit_2(pipeline: Pipeline) -> None:
    pipeline.step("a", 'run: [["true"]]\n')
    (pipeline.metadata / "workflow-control.yaml").write_text("retryAfter: 99999999999h\n")
    result = pipeline.run("run")
    assert result.returncode == 2
    assert 'retryAfter "99999999999h" is not a duration Kratix can read' in result.stderr


@pytest.mark.parametrize("how", ["loop", "dangling", "outside", "linked-file"])
def test_a_broken_local_store_is_exit_3_never_no_state(pipeline: Pipeline, how: str) -> None:
    pipeline.step(
        "keep",
        """
        workdir: ../work
        state: { store: local, name: kept, files: [{ path: k.txt }] }
        run: [[sh, -c, 'echo again >> k.txt']]
        """,
    )
    assert pipeline.run("run").returncode == 0
    folder = next(pipeline.state_dir.rglob("kept"))
    current = folder / "current"
    generation = current.resolve()
    if how == "loop":
        current.unlink()
        os.symlink("current", current)
    elif how == "dangling":
        current.unlink()
        os.symlink("g-404", current)
    elif how == "outside":
        current.unlink()
        os.symlink("/etc", current)
    else:
        (generation / "k.txt").unlink()
        os.symlink("/etc/hostname", generation / "k.txt")
    result = pipeline.run("run")
    assert result.returncode == 3, result.stderr
    assert "is broken" in result.stderr
    assert not (pipeline.work / "k.txt").read_text().count("again") > 1  # no command ran again


def test_a_state_file_outside_the_workdir_is_a_validate_error(pipeline: Pipeline) -> None:
    pipeline.step(
        "keep",
        "state: { store: local, files: [{ path: ../../etc/x, key: x }, { path: /tmp/y, key: y }] }\n"
        'run: [["true"]]\n',
    )
    result = pipeline.validate()
    assert result.returncode == 2
    assert result.stderr.count("state files are relative to the workdir") == 2, result.stderr


def test_update_files_never_hold_a_secret_folded_over_lines() -> None:
    import yaml

    from runner.cases.compare import _mask
    from runner.platform.masking import Masker

    secret = "correct horse battery staple " * 4  # PyYAML folds it over two lines
    folded = yaml.safe_dump({"p": secret}).encode()
    assert secret not in folded.decode()  # the text form does not show it whole...
    masked = _mask(folded, Masker([secret]), ".yaml")
    assert yaml.safe_load(masked) == {"p": "***"}  # ...but read, it would


def test_runner_test_learns_the_outputs_a_run_recorded_as_sensitive(tmp_path) -> None:
    import json

    from runner.cases.runcase import _learn_sensitive_outputs
    from runner.platform.masking import Masker

    records = tmp_path / "runner" / "outputs"
    records.mkdir(parents=True)
    record = {"step": "gen", "outputs": {"token": "gen-0123456789", "plain": "x"},
              "sensitive": ["token"]}  # fmt: skip
    (records / "gen.json").write_text(json.dumps(record))
    masker = Masker()
    _learn_sensitive_outputs(masker, tmp_path)
    assert masker.mask('{"token": "gen-0123456789"}') == '{"token": "***"}'


def test_a_request_value_holding_a_nul_byte_is_not_exported_and_commands_run(
    pipeline: Pipeline,
) -> None:
    pipeline.request('apiVersion: x/v1\nkind: A\nmetadata: {name: n}\nspec: {v: "a\\0b"}\n')
    pipeline.step("a", 'inputs: { v: { query: .spec.v } }\nrun: [["true"]]\n')
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert '"inputs.v" (INPUT_V) is too large for an environment variable' in result.stderr
    assert "a NUL byte" in result.stderr


def test_an_unknown_name_in_a_manifest_key_is_a_validate_error(pipeline: Pipeline) -> None:
    pipeline.step(
        "m",
        "inputs: { name: { query: .metadata.name } }\n"
        "manifests: [{ path: a.yaml, document: { data: { '${{ inputs.nmae }}': x } } }]\n",
    )
    result = pipeline.validate()
    assert result.returncode == 2, result.stderr
    assert 'unknown input "nmae"' in result.stderr and 'did you mean "inputs.name"' in result.stderr
