"""What `runner plan` shows besides inputs and state (each command's env, continueOnError, the
step's `on` and `output:`), and commands in logs quoted as a shell would read them."""

from __future__ import annotations

import json
import shlex

import yaml

PLANNED = """
    inputs: {name: {query: .metadata.name}}
    secrets: {TOKEN: {env: MY_TOKEN}}
    on: {workflow: resource, action: [configure, delete], promise: app}
    workdir: ../work
    run:
      - { argv: [make, render], env: {TARGET: "${{ inputs.name }}", AUTH: "token-is-a-long-secret"},
          continueOnError: true }
      - [make, check]
    output:
      - { from: manifests/, to: app/ }
      - { from: note.txt }
"""


def test_plan_shows_each_commands_env_and_continue_on_error_and_the_steps_on_and_output(
    pipeline,
):
    pipeline.step("render", PLANNED)
    env = {"KRATIX_PROMISE_NAME": "app", "MY_TOKEN": "token-is-a-long-secret"}
    result = pipeline.run("plan", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["on"] == {"workflow": "resource", "action": ["configure", "delete"],
                          "promise": "app"}  # fmt: skip
    first, second = plan["commands"]
    # A command's env is shown rendered, and masked like everything else.
    assert first == {"run": ["make", "render"], "env": {"TARGET": "my-app", "AUTH": "***"},
                     "continueOnError": True}  # fmt: skip
    assert second == {"run": ["make", "check"]}
    assert plan["output"] == [
        {"from": "manifests/", "to": str(pipeline.output / "app/")},
        {"from": "note.txt", "to": str(pipeline.output / "note.txt")},
    ]
    assert "token-is-a-long-secret" not in result.stdout + result.stderr

    text = pipeline.run("plan", env=env)
    assert text.returncode == 0, text.stderr
    shown = yaml.safe_load(text.stdout.split("---")[0])
    assert shown["commands"][0]["continueOnError"] is True
    assert shown["on"]["promise"] == "app"


def test_plan_of_a_step_without_on_shows_what_it_matches(pipeline):
    pipeline.step("plain", "run: [[true]]")
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["on"] == {"workflow": "any", "action": ["configure"], "promise": "any"}
    assert plan["output"] == []


def test_commands_in_logs_are_quoted_as_a_shell_would_read_them(pipeline):
    pipeline.step(
        "quoting",
        """
        inputs: {name: {query: .metadata.name}}
        workdir: ../work
        run:
          - [echo, "two words", "it's", "${{ inputs.name }}", "$HOME"]
          - [sh, -c, "exit 3"]
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1
    first = shlex.join(["echo", "two words", "it's", "my-app", "$HOME"])
    assert first == "echo 'two words' 'it'\"'\"'s' my-app '$HOME'"
    assert f"▶ {first}\n" in result.stderr
    assert f"✔ {first} (" in result.stderr
    # The words of a shown command are the argv: pasting it into a shell runs the same thing.
    assert "✖ sh -c 'exit 3' exited with 3" in result.stderr


def test_plan_masks_a_secret_whose_serialised_form_is_escaped(pipeline):
    secret = 'pa"ss\\word-that-is-long'  # JSON writes it as pa\"ss\\word...
    pipeline.request({"metadata": {"name": "my-app"}, "spec": {"note": secret}})
    pipeline.step(
        "leaky",
        """
        inputs: {note: {query: .spec.note}}
        secrets: {PASSWORD: {env: PW}}
        workdir: ../work
        run: [[echo, "${{ inputs.note }}"]]
    """,
    )
    for fmt in ("json", "text"):
        result = pipeline.run("plan", "--format", fmt, env={"PW": secret})
        assert result.returncode == 0, result.stderr
        assert "word-that-is-long" not in result.stdout, result.stdout
        plan = (
            json.loads(result.stdout)[0]
            if fmt == "json"
            else yaml.safe_load(result.stdout.split("---")[0])
        )
        assert plan["commands"] == [{"run": ["echo", "***"]}]
        assert plan["inputs"] == {"note": "***"}


def _planned_state(pipeline, step: str, env: dict[str, str] | None = None) -> dict:
    result = pipeline.run("plan", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    [plan] = [p for p in json.loads(result.stdout) if p["step"] == step]
    return plan


KEEPS = """
    on: {{action: {action}}}
    state: {{store: local, name: st, files: [{{path: s.txt}}], save: {save}, onDelete: {on_delete}}}
    workdir: ../work
    run: [[sh, -c, 'echo applied > s.txt']]
    dryRun: [[sh, -c, 'echo planned > plan.txt']]
"""


def test_plan_says_when_the_state_is_restored_saved_or_removed_and_whether_it_is_locked(pipeline):
    pipeline.step("keep", KEEPS.format(action="configure", save="always", on_delete="keep"))
    pipeline.step("careful", KEEPS.format(action="configure", save="on-success", on_delete="keep"))
    pipeline.step("forget", KEEPS.format(action="delete", save="always", on_delete="remove"))
    keep, careful = _planned_state(pipeline, "keep"), _planned_state(pipeline, "careful")
    assert keep["state"]["restore"] == "before the first command"
    assert keep["state"]["save"] == "after the last command, also after a failure"
    assert keep["state"]["lock"] is True
    assert careful["state"]["save"] == "after the last command if all succeeded"
    assert "commandsFrom" not in keep and keep["commands"] == [
        {"run": ["sh", "-c", "echo applied > s.txt"]}
    ]
    deleting = _planned_state(pipeline, "forget", {"KRATIX_WORKFLOW_ACTION": "delete"})
    assert deleting["state"]["save"] == "removed after the step succeeds"


def test_a_dry_run_plan_shows_the_dry_run_commands_and_a_state_neither_locked_nor_saved(pipeline):
    """As the engine does it: a dry run runs dryRun, restores for it, and saves nothing."""
    pipeline.step("keep", KEEPS.format(action="configure", save="always", on_delete="keep"))
    plan = _planned_state(pipeline, "keep", {"KRATIX_DRY_RUN": "true"})
    assert plan["commandsFrom"] == "dryRun"
    assert plan["commands"] == [{"run": ["sh", "-c", "echo planned > plan.txt"]}]
    assert plan["state"]["restore"] == "before the first command"
    assert plan["state"]["save"] == "never: a dry run saves no state"
    assert plan["state"]["lock"] is False
    result = pipeline.run("run", env={"KRATIX_DRY_RUN": "true"})
    assert result.returncode == 0, result.stderr
    assert not (pipeline.state_dir / "default" / "st").exists()


def test_plan_of_manifests_needs_no_output_folder(pipeline):
    """The tutorial's `runner plan STEP --input request` has no --output: /kratix/output (or
    the folder given) need not exist for a plan, which writes nothing."""
    pipeline.step(
        "render",
        """
        manifests:
          - path: "app/${{ kratix.object.name }}.yaml"
            document: { apiVersion: v1, kind: ConfigMap, metadata: { name: x } }
        """,
    )
    missing = pipeline.output / "not-made-yet"
    result = pipeline.run("plan", "--output", str(missing), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr and not missing.exists()
    assert f"{missing}/app/my-app.yaml" in result.stdout
