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
