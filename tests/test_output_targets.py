"""`output:` targets stay inside the output folder: `validate` refuses one that leaves it, so a
run stops before any command (exit 2), and one that only a symlink takes outside fails the step
after its commands ran (exit 1), never writing outside."""

from __future__ import annotations

import pytest

from tests.test_validate import invalid, step, validate, where


def output_step(output: str) -> str:
    return step(spec=f"run: [[x]]\noutput: {output}\n")


@pytest.mark.parametrize(
    ("to", "why", "example"),
    [
        ("../x", "is outside the output folder", "x"),
        ("app/../../x/", "is outside the output folder", "x/"),
        ("/etc/app.yaml", "is absolute: targets are relative to the output folder", "app.yaml"),
    ],
    ids=["parent", "parent-after-a-folder", "absolute"],
)
def test_a_target_outside_the_output_folder_is_reported_at_its_to(tmp_path, to, why, example):
    text = output_step(f'[{{from: m.yaml, to: "{to}"}}]')
    result = invalid(tmp_path, text)
    at = where(text, f'"{to}')
    result.has(
        f'a.yaml:{at}: spec.output[0].to: output target "{to}" {why}',
        f'give a path inside the output folder, e.g. "to: {example}"',
    )


def test_a_from_outside_without_a_to_is_reported_at_the_from(tmp_path):
    text = output_step("[{from: ../shared/manifests/}]")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '../shared')}: spec.output[0].from: output target "
        '"../shared/manifests/" is outside the output folder',
        'add a "to:" inside the output folder: it defaults to the "from:" path',
    )


def test_targets_inside_the_output_folder_are_fine(tmp_path):
    text = output_step("[{from: a/, to: app/../app/}, {from: b.yaml, to: .}, {from: c/, to: ./}]")
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


def test_run_stops_before_any_command_on_a_target_outside(pipeline):
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - [touch, ran]
        output:
          - {from: ran, to: ../escaped}
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert 'spec.output[0].to: output target "../escaped" is outside' in result.stderr
    assert not (pipeline.work / "ran").exists()
    assert not (pipeline.output.parent / "escaped").exists()


def test_a_symlink_taking_a_target_outside_fails_the_step_with_exit_1(pipeline):
    outside = pipeline.root / "elsewhere"
    outside.mkdir()
    (pipeline.output / "app").symlink_to(outside)
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - script: echo namespace > ns.yaml
        output:
          - {from: ns.yaml, to: app/ns.yaml}
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "spec.output[0].to: output target app/ns.yaml: " in result.stderr
    assert f"{pipeline.output / 'app'} is a symbolic link (to {outside})" in result.stderr
    assert (pipeline.work / "ns.yaml").exists()  # the commands ran
    assert not (outside / "ns.yaml").exists()
