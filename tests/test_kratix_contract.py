"""The Kratix pipeline contract, with the written files read as Kratix reads them.

Kratix's side (syntasso/kratix): work-creator/lib/workflow_control.go reads workflow-control.yaml
once every container exited 0; work-creator/cmd/update_status.go and lib/status_updater.go merge
status.yaml (top-level keys replace, `conditions` by type, a `kratix` key fails the pipeline);
api/v1alpha1/pipeline_factory.go sets KRATIX_* (KRATIX_DRY_RUN=true only in a dry run).
"""

from __future__ import annotations

import subprocess
import sys

import yaml


def control(pipeline) -> dict | None:
    path = pipeline.metadata / "workflow-control.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else None


def touch_step(pipeline, name: str = "work", extra: str = "") -> None:
    pipeline.step(name, f"workdir: ../work\nrun: [[touch, {name}-ran]]\n{extra}")


# -- workflow-control.yaml ------------------------------------------------------------------


def test_a_request_another_container_wrote_is_kept_and_nothing_runs(pipeline):
    (pipeline.metadata / "workflow-control.yaml").write_text("suspend: true\nmessage: approval\n")
    touch_step(pipeline)
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert "already asks Kratix to suspend (approval): running nothing" in result.stderr
    assert not (pipeline.work / "work-ran").exists()
    assert control(pipeline) == {"suspend": True, "message": "approval"}


def test_an_earlier_retry_request_is_kept_and_nothing_runs(pipeline):
    (pipeline.metadata / "workflow-control.yaml").write_text("retryAfter: 2m\n")
    touch_step(pipeline)
    result = pipeline.run("run")
    assert result.returncode == 0
    assert "already asks Kratix to retry after 2m" in result.stderr
    assert not (pipeline.work / "work-ran").exists()


def test_a_control_file_that_asks_nothing_lets_the_steps_run(pipeline):
    (pipeline.metadata / "workflow-control.yaml").write_text("message: fine\nsuspend: false\n")
    touch_step(pipeline)
    assert pipeline.run("run").returncode == 0
    assert (pipeline.work / "work-ran").exists()


def test_a_control_file_kratix_cannot_read_is_refused_before_anything_runs(pipeline):
    path = pipeline.metadata / "workflow-control.yaml"
    path.write_text("retryAfter: soon\nsuspend: maybe\n")
    touch_step(pipeline)
    result = pipeline.run("run")
    assert result.returncode == 2
    assert f'{path}: retryAfter "soon" is not a duration Kratix can read' in result.stderr
    assert f"{path}: suspend must be a boolean, not a string" in result.stderr
    assert not (pipeline.work / "work-ran").exists()


# -- status.yaml ----------------------------------------------------------------------------


def test_conditions_merge_by_type_with_earlier_containers(pipeline):
    (pipeline.metadata / "status.yaml").write_text(
        "conditions:\n"
        "  - {type: Ready, status: 'False', reason: Pending}\n"
        "  - {type: DatabaseReady, status: 'True'}\n"
        "other: kept\n"
    )
    pipeline.step(
        "report",
        """
        workdir: ../work
        run:
          - {argv: [python3, -c, 'import json; print(json.dumps([{"type": "Ready", "status": "True", "reason": "Done"}, {"type": "BucketReady", "status": "True"}]))'], stdout: c.json}
        status:
          conditions: { file: c.json, jmespath: "@" }
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Done"},
            {"type": "DatabaseReady", "status": "True"},
            {"type": "BucketReady", "status": "True"},
        ],
        "other": "kept",
    }


def test_an_earlier_kratix_key_is_refused_naming_the_file_before_anything_runs(pipeline):
    path = pipeline.metadata / "status.yaml"
    path.write_text("kratix: {workflows: {}}\nmessage: hi\n")
    touch_step(pipeline, extra="status: {message: done}")
    result = pipeline.run("run")
    assert result.returncode == 2
    assert f'{path}: the top-level key "kratix" is reserved by Kratix' in result.stderr
    assert not (pipeline.work / "work-ran").exists()
    assert path.read_text() == "kratix: {workflows: {}}\nmessage: hi\n"  # not silently dropped


def test_an_earlier_non_string_message_is_refused(pipeline):
    path = pipeline.metadata / "status.yaml"
    path.write_text("message: 3\n")
    touch_step(pipeline)
    result = pipeline.run("run")
    assert result.returncode == 2
    assert f"{path}: message must be a string, not an integer" in result.stderr
    assert not (pipeline.work / "work-ran").exists()


def test_an_unreadable_earlier_status_is_refused_before_anything_runs(pipeline):
    path = pipeline.metadata / "status.yaml"
    path.write_text("a: [unclosed\n")
    touch_step(pipeline)
    result = pipeline.run("run")
    assert result.returncode == 2
    assert f"{path}:" in result.stderr and "invalid YAML" in result.stderr
    assert not (pipeline.work / "work-ran").exists()


def test_a_non_string_message_from_a_step_fails_it_and_writes_no_status(pipeline):
    pipeline.step(
        "report",
        """
        workdir: ../work
        run:
          - {argv: [echo, '{"n": 3}'], stdout: out.json}
        status:
          message: { file: out.json, query: .n }
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1
    assert "report.yaml:" in result.stderr and "message must be a string" in result.stderr
    assert not (pipeline.metadata / "status.yaml").exists()


def test_earlier_values_keep_the_meaning_kratix_gives_them(pipeline):
    # Kratix reads status.yaml with sigs.k8s.io/yaml (go-yaml v2: YAML 1.1 booleans, `y` too).
    (pipeline.metadata / "status.yaml").write_text(
        "enabled: yes\nshort: y\nquoted: 'yes'\nversion: 1.10\nexact: '1.10'\nwhen: 2001-12-14\n"
    )
    pipeline.step("report", "workdir: ../work\nrun: [[true]]\nstatus: {message: 'on'}\n")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    text = (pipeline.metadata / "status.yaml").read_text()
    assert text.splitlines() == [
        "enabled: true",
        "short: true",
        "quoted: 'yes'",
        "version: 1.1",
        "exact: '1.10'",
        "when: 2001-12-14",
        "message: 'on'",  # the step file's YAML 1.2 string stays a string for Kratix
    ]


def test_a_promise_workflow_warns_that_kratix_keeps_only_message(pipeline):
    touch_step(pipeline, extra="on: {workflow: promise}\nstatus: {message: done, url: x}")
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_TYPE": "promise"})
    assert result.returncode == 0, result.stderr
    assert "status url: a Promise's status keeps only message" in result.stderr


def test_status_is_not_written_when_the_output_copy_fails(pipeline):
    touch_step(pipeline, extra="output: [{from: missing.yaml}]\nstatus: {message: done}")
    result = pipeline.run("run")
    assert result.returncode == 1
    assert "output missing.yaml was not made" in result.stderr
    assert not (pipeline.metadata / "status.yaml").exists()


# -- dry run --------------------------------------------------------------------------------


def test_dry_run_writes_output_and_status_runs_no_commands_saves_nothing(pipeline):
    (pipeline.work / "app.yaml").write_text("kind: ConfigMap\n")
    pipeline.step(
        "apply",
        """
        inputs: {name: {query: .metadata.name}}
        workdir: ../work
        state: {store: local, name: "${{ inputs.name }}", files: [{path: s.txt}], lock: true}
        run: [[sh, -c, 'echo applied > s.txt']]
        output: [{from: app.yaml, to: app/}]
        status: {message: "preview of ${{ inputs.name }} (${{ kratix.object.name }})"}
    """,
    )
    result = pipeline.run(
        "run", env={"KRATIX_DRY_RUN": "true", "KRATIX_OBJECT_NAME": "kratix-dry-run-x7"}
    )
    assert result.returncode == 0, result.stderr
    assert (pipeline.output / "app" / "app.yaml").read_text() == "kind: ConfigMap\n"
    # Names come from object.yaml (the live request), not the preview's temporary name.
    assert pipeline.status() == {"message": "preview of my-app (my-app)"}
    assert not (pipeline.work / "s.txt").exists()
    assert not pipeline.state_dir.exists() or not any(pipeline.state_dir.rglob("*"))


def test_dry_run_takes_no_lock(pipeline):
    from runner.state.base import StateRef
    from runner.state.local import LocalStore

    pipeline.step(
        "apply",
        """
        workdir: ../work
        state: {store: local, name: st, files: [{path: s.txt}], lock: true}
        run: [[touch, applied]]
        dryRun: [[touch, planned]]
    """,
    )
    with LocalStore(pipeline.state_dir).lock(StateRef("apply", "st", "default"), 1):
        result = pipeline.run("run", "--lock-wait", "0", env={"KRATIX_DRY_RUN": "true"})
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "planned").exists() and not (pipeline.work / "applied").exists()
    assert control(pipeline) is None


# -- folders and the KRATIX_* environment ---------------------------------------------------


def test_relative_kratix_folders_reach_commands_as_absolute_paths(pipeline):
    pipeline.step(
        "write",
        """
        workdir: ../steps-work
        run: [[sh, -c, 'echo out > "$KRATIX_OUTPUT_DIR/x.txt"; echo "${{ kratix.dirs.metadata }}" > "$KRATIX_METADATA_DIR/m.txt"']]
    """,
    )
    (pipeline.root / "steps-work").mkdir()
    args = ["--steps-dir", "steps.d", "--input", "kratix/input", "--output", "kratix/output"]
    args += ["--metadata", "kratix/new-metadata"]
    result = subprocess.run(
        [sys.executable, "-m", "runner", "run", *args],
        cwd=pipeline.root,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (pipeline.output / "x.txt").read_text() == "out\n"
    # The metadata folder is made before the commands run.
    metadata = pipeline.root / "kratix" / "new-metadata"
    assert (metadata / "m.txt").read_text() == f"{metadata}\n"


def test_crd_plural_cluster_scoped_and_dry_run_are_templates(pipeline):
    pipeline.step(
        "who",
        """
        workdir: ../work
        run: [[true]]
        status: {message: "${{ kratix.crdPlural }} ${{ kratix.clusterScoped }} ${{ kratix.dryRun }}"}
    """,
    )
    env = {"KRATIX_CRD_PLURAL": "apps", "KRATIX_CLUSTER_SCOPED": "false"}
    assert pipeline.run("run", env=env).returncode == 0
    assert pipeline.status() == {"message": "apps false false"}


def test_state_defaults_to_the_pipelines_namespace_not_the_requests(pipeline):
    # A Promise with workflows.config.pipelineNamespace runs the pipeline (and creates the
    # Role that rbac.permissions grant) there, not in the request's namespace.
    pipeline.step(
        "st",
        "workdir: ../work\nstate: {store: local, name: st, files: [{path: s.txt}]}\n"
        "run: [[sh, -c, 'echo 1 > s.txt']]",
    )
    result = pipeline.run("run", env={"POD_NAMESPACE": "platform-pipelines"})
    assert result.returncode == 0, result.stderr
    assert "platform-pipelines/st" in result.stderr
    assert pipeline.run("run").returncode == 0  # outside a pod: the request's namespace
    stored = {p.relative_to(pipeline.state_dir).parts[0] for p in pipeline.state_dir.iterdir()}
    assert {"platform-pipelines", "default"} <= stored


def test_a_bad_status_yaml_written_by_a_command_fails_the_step_with_exit_1(pipeline):
    pipeline.step(
        "report",
        """
        workdir: ../work
        run: [[sh, -c, 'echo "kratix: {}" > "$KRATIX_METADATA_DIR/status.yaml"']]
        status: {message: done}
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1  # commands ran: never exit 2
    assert 'status.yaml: the top-level key "kratix" is reserved by Kratix' in result.stderr


def test_output_of_a_delete_step_is_copied_with_a_warning_that_kratix_ignores_it(pipeline):
    (pipeline.work / "gone.yaml").write_text("kind: ConfigMap\n")
    touch_step(pipeline, extra="on: {action: delete}\noutput: [{from: gone.yaml}]")
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert "output: Kratix ignores the output of a delete workflow" in result.stderr
    assert (pipeline.work / "work-ran").exists()
