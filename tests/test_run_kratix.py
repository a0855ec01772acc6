"""The Kratix contract: step selection by workflow, status merging, output, dry runs, plan."""

from __future__ import annotations

import json

import yaml


def marker_step(pipeline, name: str, on: str = "", file: str | None = None) -> None:
    pipeline.step(
        name,
        f"""
        {on}
        workdir: ../work
        run:
          - [sh, -c, 'echo {name} >> ran.txt']
    """,
        file=file,
    )


def ran(pipeline) -> list[str]:
    path = pipeline.work / "ran.txt"
    return path.read_text().split() if path.exists() else []


def test_without_names_every_matching_step_runs_in_file_name_order(pipeline):
    marker_step(pipeline, "second", "on: {workflow: resource}", file="20-second.yaml")
    marker_step(pipeline, "first", "", file="10-first.yaml")
    marker_step(pipeline, "other-promise", "on: {promise: db}", file="15-db.yaml")
    marker_step(pipeline, "promise-only", "on: {workflow: promise}", file="16-p.yaml")
    result = pipeline.run(
        "run", env={"KRATIX_PROMISE_NAME": "app", "KRATIX_WORKFLOW_TYPE": "resource"}
    )
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == ["first", "second"]


def test_delete_workflow_runs_only_delete_steps(pipeline):
    marker_step(pipeline, "create", "", file="10-create.yaml")
    marker_step(pipeline, "delete", "on: {action: delete}", file="90-delete.yaml")
    marker_step(pipeline, "both", "on: {action: [configure, delete]}", file="50-both.yaml")
    assert pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"}).returncode == 0
    assert ran(pipeline) == ["both", "delete"]


def test_named_steps_run_in_the_order_named(pipeline):
    marker_step(pipeline, "a", file="1.yaml")
    marker_step(pipeline, "b", file="2.yaml")
    assert pipeline.run("run", "b", "a").returncode == 0
    assert ran(pipeline) == ["b", "a"]


def test_no_matching_step_is_a_successful_no_op(pipeline):
    marker_step(pipeline, "delete", "on: {action: delete}")
    result = pipeline.run("run")
    assert result.returncode == 0
    assert "no step matches workflow=resource action=configure" in result.stderr


def test_status_is_merged_with_earlier_containers_and_never_writes_kratix_key(pipeline):
    (pipeline.metadata / "status.yaml").write_text("earlier: kept\nmessage: old\n")
    pipeline.step(
        "report",
        """
        inputs:
          name: { query: .metadata.name }
        workdir: ../work
        run:
          - {argv: [python3, -c, 'import json; print(json.dumps({"url": {"value": "http://x"}, "n": 3}))'], stdout: out.json}
        status:
          message: "App ${{ inputs.name }} in ${{ kratix.object.namespace }} is ready"
          url: { file: out.json, query: .url.value }
          count: { file: out.json, jmespath: n }
          absent: { file: out.json, query: .nothing }
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {
        "earlier": "kept",
        "message": "App my-app in default is ready",
        "url": "http://x",
        "count": 3,
    }
    assert "status absent: .nothing found nothing in out.json" in result.stderr


def test_status_from_missing_required_file_fails_the_step(pipeline):
    pipeline.step(
        "report",
        """
        workdir: ../work
        run: [[true]]
        status:
          url: { file: nope.json, required: true }
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1
    assert "cannot read nope.json" in result.stderr


def test_output_files_are_copied_into_the_kratix_output_folder(pipeline):
    pipeline.step(
        "render",
        """
        workdir: ../work
        run:
          - [sh, -c, 'mkdir -p manifests && echo "kind: Namespace" > manifests/ns.yaml && echo hi > note.txt']
        output:
          - { from: manifests/, to: app/ }
          - { from: note.txt }
    """,
    )
    assert pipeline.run("run").returncode == 0
    assert (pipeline.output / "app" / "ns.yaml").read_text() == "kind: Namespace\n"
    assert (pipeline.output / "note.txt").read_text() == "hi\n"


def test_kratix_dirs_reach_commands_as_env_and_templates(pipeline):
    pipeline.step(
        "dirs",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo "$KRATIX_OUTPUT_DIR ${{ kratix.dirs.metadata }}" > dirs.txt']
    """,
    )
    assert pipeline.run("run").returncode == 0
    assert (pipeline.work / "dirs.txt").read_text().split() == [
        str(pipeline.output),
        str(pipeline.metadata),
    ]


def test_kratix_object_comes_from_env_and_falls_back_to_the_request(pipeline):
    pipeline.step(
        "who",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo "${{ kratix.object.kind }} ${{ kratix.object.group }} ${{ kratix.object.name }} ${{ kratix.promise }}" > who.txt']
    """,
    )
    assert (
        pipeline.run(
            "run", env={"KRATIX_PROMISE_NAME": "app", "KRATIX_OBJECT_NAME": "from-env"}
        ).returncode
        == 0
    )
    assert (pipeline.work / "who.txt").read_text().split() == [
        "App",
        "workshop.kratix.io",
        "from-env",
        "app",
    ]


def test_dry_run_runs_the_dry_run_commands_and_saves_no_state(pipeline):
    pipeline.step(
        "tf",
        """
        workdir: ../work
        state: {store: local, name: tf, files: [{path: s.txt}]}
        run:
          - [sh, -c, 'echo applied > s.txt']
        dryRun:
          - [sh, -c, 'echo planned > plan.txt']
    """,
    )
    result = pipeline.run("run", env={"KRATIX_DRY_RUN": "true"})
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "plan.txt").exists()
    assert not (pipeline.work / "s.txt").exists()
    assert not (pipeline.state_dir / "default" / "tf").exists()


def test_plan_shows_inputs_env_commands_and_state_with_secrets_masked(pipeline):
    pipeline.step(
        "tf",
        """
        inputs: {name: {query: .metadata.name}}
        secrets: {PASSWORD: {env: PW}}
        env: {BUCKET: "${{ inputs.name }}.bucket"}
        workdir: ../work
        state: {store: local, name: "${{ inputs.name }}-state", files: [{path: s.tfstate, key: tfstate}]}
        run:
          - [terraform, apply, "-var=name=${{ inputs.name }}"]
    """,
    )
    result = pipeline.run("plan", "--format", "json", env={"PW": "hunter2-long-password"})
    assert result.returncode == 0, result.stderr
    assert "hunter2-long-password" not in result.stdout + result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["inputs"] == {"name": "my-app"}
    assert plan["secrets"] == {"PASSWORD": "***"}
    assert plan["env"]["BUCKET"] == "my-app.bucket"
    assert plan["commands"] == [{"run": ["terraform", "apply", "-var=name=my-app"]}]
    assert plan["state"]["name"] == "my-app-state" and plan["state"]["store"] == "local"
    text = pipeline.run("plan", env={"PW": "hunter2-long-password"})
    assert yaml.safe_load(text.stdout.split("---")[0])["step"] == "tf"
    assert not (pipeline.work / "s.tfstate").exists()
