"""The run model (DESIGN "The run model"): each step decided at its turn from what the steps
before it recorded, a skipped step's outputs null, state restored without commands, values in
the environment, dry-run outputs, and plan and state of one step without recorded outputs.

Each test runs the runner as a pipeline container does: a subprocess on real files.
"""

from __future__ import annotations

import json
import subprocess

from tests.conftest import Pipeline

# "Look, create if missing, report": the shape a PostgreSQL Promise takes.
LOOK = """
workdir: ../work
run: [{ argv: [sh, -c, 'test -e db && echo true || echo false'], stdout: exists.txt }]
outputs: { exists: { file: exists.txt, query: . } }
"""
CREATE = """
if: "!(steps.look.outputs.exists)"
workdir: ../work
run: [[sh, -c, 'echo made > db']]
outputs: { created: { jmespath: "`true`" } }
"""
REPORT = """
workdir: ../work
env: { CREATED: "${{ steps.create.outputs.created }}" }
run: [[sh, -c, 'echo "created=[$CREATED]" > report.txt']]
status:
  created: "${{ steps.create.outputs.created }}"
"""


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def look_create_report(pipeline: Pipeline) -> None:
    pipeline.step("look", LOOK, file="10-look.yaml")
    pipeline.step("create", CREATE, file="20-create.yaml")
    pipeline.step("report", REPORT, file="30-report.yaml")


def test_a_step_whose_if_reads_an_earlier_steps_outputs_is_decided_at_its_turn(
    pipeline: Pipeline,
) -> None:
    look_create_report(pipeline)
    first = ok(pipeline.run("run"))
    assert (pipeline.work / "db").read_text() == "made\n"  # looked, found nothing, created
    assert "step create skipped" not in first.stderr
    assert pipeline.status() == {"created": True}
    assert (pipeline.work / "report.txt").read_text() == "created=[true]\n"
    # Run again: it exists now, so create is skipped and its outputs read as null.
    second = ok(pipeline.run("run"))
    assert "step create skipped: if: !(steps.look.outputs.exists) is false" in second.stderr
    assert (pipeline.work / "report.txt").read_text() == "created=[]\n"
    assert pipeline.status() == {"created": None}


def test_a_problem_found_at_a_steps_turn_after_a_command_ran_is_exit_1(pipeline: Pipeline) -> None:
    pipeline.step("look", LOOK, file="10-look.yaml")
    pipeline.step(
        "use",
        """
        values: { upper: { jmespath: "upper(steps.look.outputs.exists)" } }
        run: [[echo, "${{ values.upper }}"]]
        """,
        file="20-use.yaml",
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr  # look ran its command: not "nothing ran"
    assert 'value "upper"' in result.stderr


def test_a_missing_secret_of_a_later_step_stops_the_run_before_anything_runs(
    pipeline: Pipeline,
) -> None:
    pipeline.step("look", LOOK, file="10-look.yaml")
    pipeline.step(
        "create",
        CREATE + "secrets: { PW: { env: DB_PASSWORD } }\n",
        file="20-create.yaml",
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "DB_PASSWORD" in result.stderr
    assert not (pipeline.work / "exists.txt").exists()  # look never ran


def test_a_step_with_state_and_no_commands_restores_it_for_its_outputs(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "make",
        """
        workdir: ../work
        state: { store: local, name: pw, files: [{ path: pw.txt }] }
        run: [[sh, -c, 'test -e pw.txt || echo s3cr3t-pw > pw.txt']]
        """,
        file="10-make.yaml",
    )
    pipeline.step(
        "read",
        """
        workdir: ../work2
        state: { store: local, name: pw, files: [{ path: pw.txt }] }
        outputs: { pw: { file: pw.txt, sensitive: true } }
        status: { has: "yes" }
        """,
        file="20-read.yaml",
    )
    (pipeline.root / "work2").mkdir()
    ok(pipeline.run("run", "make"))
    result = ok(pipeline.run("run", "read"))
    assert "restored state" in result.stderr
    record = json.loads((pipeline.metadata / "runner" / "outputs" / "read.json").read_text())
    assert record["outputs"]["pw"] == "s3cr3t-pw"
    assert "state unchanged: not saved again" in result.stderr


def test_values_reach_commands_as_value_variables(pipeline: Pipeline) -> None:
    pipeline.step(
        "v",
        """
        inputs: { size: { query: .spec.size, default: small } }
        values:
          replicas: { from: inputs.size, map: { small: 1, large: 3 } }
          db-name: { jmespath: "join('_', ['app', inputs.size])" }
          labels: { jmespath: "{tier: inputs.size}" }
        workdir: ../work
        run: [[sh, -c, 'echo "$VALUE_REPLICAS $VALUE_DB_NAME $VALUE_LABELS" > v.txt']]
        """,
    )
    ok(pipeline.run("run"))
    assert (pipeline.work / "v.txt").read_text() == '1 app_small {"tier":"small"}\n'


def test_a_required_output_no_command_wrote_is_null_in_a_dry_run(pipeline: Pipeline) -> None:
    pipeline.step(
        "apply",
        """
        workdir: ../work
        run: [{ argv: [sh, -c, 'echo url > url.txt'] }]
        outputs: { url: { file: url.txt, required: true } }
        status: { url: "${{ outputs.url }}" }
        """,
    )
    ok(pipeline.run("run", env={"KRATIX_DRY_RUN": "true"}))
    assert pipeline.status() == {"url": None}
    # Outside a dry run a required output whose file is missing still fails the step.
    (pipeline.steps / "apply.yaml").write_text(
        (pipeline.steps / "apply.yaml").read_text().replace("echo url > url.txt", "true")
    )
    assert pipeline.run("run").returncode == 1


def test_plan_of_one_step_reading_unrecorded_outputs_says_it_is_decided_later(
    pipeline: Pipeline,
) -> None:
    look_create_report(pipeline)
    result = ok(pipeline.run("plan", "create", "--format", "json"))
    (plan,) = json.loads(result.stdout)
    assert plan["waitsFor"] == ["look"]
    assert plan["if"]["holds"].startswith("decided when the step runs")
    assert not (pipeline.work / "db").exists()  # plan runs nothing


def test_plan_of_every_step_decides_nothing_from_placeholders(pipeline: Pipeline) -> None:
    look_create_report(pipeline)
    result = ok(pipeline.run("plan", "--format", "json"))
    plans = {p["step"]: p for p in json.loads(result.stdout)}
    assert "waitsFor" not in plans["look"]
    assert plans["create"]["waitsFor"] == ["look"]
    assert plans["report"]["waitsFor"] == ["create"]
    assert plans["report"]["env"]["CREATED"] == "${{ steps.create.outputs.created }}"


def test_state_show_of_a_step_whose_env_reads_unrecorded_outputs_works(
    pipeline: Pipeline,
) -> None:
    pipeline.step("look", LOOK, file="10-look.yaml")
    pipeline.step(
        "keep",
        """
        env: { X: "${{ steps.look.outputs.exists }}" }
        workdir: ../work
        state: { store: local, name: kept, files: [{ path: k.txt }] }
        run: [[sh, -c, 'echo k > k.txt']]
        """,
        file="20-keep.yaml",
    )
    ok(pipeline.run("run"))
    shown = ok(pipeline.run("state", "show", "keep"))
    assert "k.txt" in shown.stdout or "k.txt" in shown.stderr


def test_state_show_says_so_when_the_state_name_reads_unrecorded_outputs(
    pipeline: Pipeline,
) -> None:
    pipeline.step("look", LOOK, file="10-look.yaml")
    pipeline.step(
        "keep",
        """
        workdir: ../work
        state: { store: local, name: "db-${{ steps.look.outputs.exists }}", files: [{ path: k.txt }] }
        run: [[sh, -c, 'echo k > k.txt']]
        """,
        file="20-keep.yaml",
    )
    result = pipeline.run("state", "show", "keep")
    assert result.returncode == 2
    assert "the state of step keep is named from the outputs of look" in result.stderr


TEMPLATE = """apiVersion: runner.kratix.dev/v1alpha1
kind: StepTemplate
metadata: {name: greet}
spec:
  params: { msg: { type: string } }
  run: [[echo, "${{ params.msg }}", "${{ inputs.nope }}"]]
"""


def _user(name: str) -> str:
    return (
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\n"
        f"metadata: {{name: {name}}}\nspec:\n  uses: greet\n  with: {{ msg: hi }}\n"
    )


def test_validate_of_one_file_uses_the_templates_of_its_folder(pipeline: Pipeline) -> None:
    (pipeline.steps / "00-greet.yaml").write_text(TEMPLATE.replace(', "${{ inputs.nope }}"', ""))
    (pipeline.steps / "10-a.yaml").write_text(_user("a"))
    result = pipeline.validate("steps.d/10-a.yaml")
    assert result.returncode == 0, result.stderr
    assert "no StepTemplate named" not in result.stderr


def test_a_templates_problem_is_reported_once_for_every_step_using_it(pipeline: Pipeline) -> None:
    (pipeline.steps / "00-greet.yaml").write_text(TEMPLATE)
    (pipeline.steps / "10-a.yaml").write_text(_user("a"))
    (pipeline.steps / "20-b.yaml").write_text(_user("b"))
    result = pipeline.validate("steps.d")
    assert result.returncode == 2
    assert result.stderr.count('unknown input "nope"') == 1, result.stderr
    assert "(used by step a at steps.d/10-a.yaml:3, step b at steps.d/20-b.yaml:3)" in result.stderr


def test_a_missing_output_folder_is_made_not_an_internal_error(pipeline: Pipeline) -> None:
    pipeline.step("m", "manifests: [{ path: a.yaml, document: { kind: ConfigMap } }]\n")
    missing = pipeline.root / "nowhere" / "out"
    argv = [a if a != str(pipeline.output) else str(missing) for a in pipeline.args()]
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "runner", "run", *argv], cwd=pipeline.work, env=pipeline.env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (missing / "a.yaml").is_file()


def test_the_local_store_keeps_state_files_readable_by_their_owner_only(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "keep",
        """
        workdir: ../work
        state: { store: local, name: kept, files: [{ path: pw.txt }] }
        run: [[sh, -c, 'echo s3cr3t > pw.txt']]
        """,
    )
    ok(pipeline.run("run"))
    stored = [p for p in pipeline.state_dir.rglob("pw.txt")]
    assert stored and all(p.stat().st_mode & 0o077 == 0 for p in stored)
