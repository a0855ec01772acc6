"""forEach as users meet it: `validate` at file:line:col, `run`'s exit codes, `plan`'s files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Pipeline, runner_in_process
from tests.test_validate import invalid, runner_in_subprocess, step, validate, where

USERS = [{"name": "ann", "role": "admin"}, {"name": "bob", "role": "dev"},
         {"name": "cid", "role": "admin"}]  # fmt: skip


def test_the_foreach_forms_are_valid(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { users: { query: .spec.users, type: array }, tags: { query: .spec.t } }\n"
        "values:\n"
        "  secretName: { jmespath: \"'db'\" }\n"
        "  userSecrets:\n"
        "    forEach: inputs.users\n"
        '    jmespath: "merge(item, {secretName: values.secretName, at: index})"\n'
        "  roles: { forEach: inputs.users, from: item.role, map: { admin: 1 }, default: 0 }\n"
        "manifests:\n"
        "  - path: 'users/${{ item.name }}-${{ index }}.yaml'\n"
        "    forEach: values.userSecrets\n"
        "    if: \"item.role == 'admin'\"\n"
        "    document: { kind: ConfigMap, metadata: { name: '${{ item.name }}' } }\n"
    )
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


def test_item_outside_a_foreach_entry_is_refused_where_it_is_read(tmp_path: Path) -> None:
    text = step(
        spec="values:\n"
        '  a: { jmespath: "item.name" }\n'
        "manifests:\n"
        "  - path: 'x/${{ index }}.yaml'\n"
        "    document: { kind: ConfigMap }\n"
    )
    result = invalid(tmp_path, text, runner=runner_in_subprocess)
    hint = "item and index are the current element and its position in a value or manifest with forEach:"
    result.has(
        f'a.yaml:{where(text, "item.name")}: spec.values.a.jmespath: "item.name" is read outside '
        "a forEach entry",
        hint,
    )
    result.has(
        f'a.yaml:{where(text, "${{ index")}: spec.manifests[0].path: "index" is read outside a '
        "forEach entry",
        hint,
    )


QUOTED_3 = '"`3`"'  # the scalar starts at its quote


def test_a_foreach_known_not_to_give_a_list_is_refused_by_validate(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { port: { query: .spec.port, type: integer } }\n"
        "values:\n"
        '  a: { forEach: "`3`", jmespath: item }\n'
        "  b: { forEach: inputs.port, jmespath: item }\n"
        "  c: { forEch: inputs.port, jmespath: \"'x'\" }\n"
        "status: { x: '${{ values.a }}' }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, QUOTED_3)}: spec.values.a.forEach: forEach: `3` gives an integer, "
        "not a list or a mapping",
        "give it an expression that gives a list, e.g. inputs.users",
    )
    result.has(
        f"a.yaml:{where(text, 'inputs.port, jm')}: spec.values.b.forEach: forEach: inputs.port is "
        "an integer, not a list or a mapping",
        'give input "port" type: array, or forEach a list',
    )
    result.has(
        f'a.yaml:{where(text, "forEch")}: spec.values.c.forEch: unknown field "forEch"',
        'did you mean "forEach"?',
    )


def test_an_item_of_a_sensitive_output_is_refused_in_a_manifest(tmp_path: Path) -> None:
    text = step(
        spec="run: [[sh, -c, 'echo [a] > t.yaml']]\n"
        "outputs: { tokens: { file: t.yaml, query: ., sensitive: true } }\n"
        "manifests:\n"
        "  - path: t.yaml\n"
        "    forEach: outputs.tokens\n"
        "    document: { kind: ConfigMap, data: { t: '${{ item }}' } }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{ item")}: spec.manifests[0].document.data.t: "item" is '
        "sensitive (it is built from outputs.tokens): it would be written to a file",
        'read it in a command\'s env: or stdin:, or drop "sensitive: true" where it is made',
    )


def test_a_value_over_a_sensitive_output_is_sensitive(tmp_path: Path) -> None:
    (tmp_path / "10-a.yaml").write_text(
        step(
            "a",
            spec="run: [[sh, -c, 'echo [a] > t.yaml']]\n"
            "outputs: { tokens: { file: t.yaml, query: ., sensitive: true } }\n",
        )
    )
    text = step(
        "b",
        spec="values: { each: { forEach: steps.a.outputs.tokens, jmespath: upper(item) } }\n"
        "status: { t: '${{ values.each }}' }\n"
        "manifests:\n"
        "  - { path: t.yaml, forEach: steps.a.outputs.tokens, document: { n: '${{ item }}' } }\n",
    )
    (tmp_path / "20-b.yaml").write_text(text)
    result = validate(tmp_path, ".")
    assert result.code == 2, result.out
    assert (
        f'20-b.yaml:{where(text, "${{ values")}: spec.status.t: "values.each" is built from '
        "steps.a.outputs.tokens, which is sensitive: it would be written to a file"
    ) in result.lines
    assert (
        f'20-b.yaml:{where(text, "${{ item")}: spec.manifests[0].document.n: "item" is built '
        "from steps.a.outputs.tokens, which is sensitive: it would be written to a file"
    ) in result.lines


RUN_STEP = """
inputs: { users: { query: .spec.users } }
workdir: ../work
run: [[sh, -c, "echo ran > ran.txt"]]
manifests:
  - path: "users/${{ item.role }}.yaml"
    forEach: inputs.users
    document: { apiVersion: v1, kind: ConfigMap, metadata: { name: "${{ item.name }}" } }
"""


def test_run_writes_same_path_items_to_one_file_and_exits_0(pipeline: Pipeline) -> None:
    pipeline.step("users", RUN_STEP)
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"users": USERS}})  # fmt: skip
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    admin = (pipeline.output / "users" / "admin.yaml").read_text()
    assert admin.count("kind: ConfigMap") == 2 and admin.index("ann") < admin.index("cid")
    assert "2 document(s)" in result.stderr


def test_run_stops_with_exit_2_before_anything_runs_on_a_request_with_no_list(
    pipeline: Pipeline,
) -> None:
    pipeline.step("users", RUN_STEP)
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"users": "ann"}})  # fmt: skip
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "spec.manifests[0].forEach: forEach: inputs.users gives a string" in result.stderr
    assert "users.yaml:11:16: " in result.stderr  # the forEach of the step file
    assert not (pipeline.work / "ran.txt").exists()


def test_run_exits_1_when_an_output_it_iterates_is_no_list(pipeline: Pipeline) -> None:
    pipeline.step(
        "users",
        """
        workdir: ../work
        run: [[sh, -c, "echo plain > u.txt"]]
        outputs: { users: { file: u.txt } }
        manifests:
          - { path: "u/${{ item }}.yaml", forEach: outputs.users, document: { kind: ConfigMap } }
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "forEach: outputs.users gives a string" in result.stderr
    assert not (pipeline.output / "u").exists()


def test_plan_shows_one_entry_per_file_with_its_documents(pipeline: Pipeline) -> None:
    pipeline.step(
        "users",
        RUN_STEP + "  - { path: 'o/${{ item }}.yaml', forEach: outputs.x, "
        "document: { kind: ConfigMap } }\noutputs: { x: { jmespath: \"['a']\" } }\n",
    )
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"users": USERS}})  # fmt: skip
    env = {**pipeline.env, "KRATIX_WORKFLOW_TYPE": "resource",
           "KRATIX_WORKFLOW_ACTION": "configure"}  # fmt: skip
    result = runner_in_process(["plan", *pipeline.args(), "--format", "json"], pipeline.work, env)
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    users, later = plan["manifests"]
    assert users["items"] == 3
    files = {Path(f["path"]).name: f for f in users["files"]}
    assert list(files) == ["admin.yaml", "dev.yaml"]
    assert files["admin.yaml"]["items"] == [0, 2]
    assert [d["metadata"]["name"] for d in files["admin.yaml"]["documents"]] == ["ann", "cid"]
    assert later["files"] == "known after the commands (its forEach reads outputs)"
    assert not list(pipeline.output.iterdir())


def test_plan_reports_what_run_would_refuse_without_writing(pipeline: Pipeline) -> None:
    """plan calls the run's builders: a secret's value in a document and a folder selected
    twice are the errors run would stop on, not documents shown."""
    pipeline.step(
        "leaky",
        """
        secrets: { PW: { env: PW } }
        inputs: { user: { query: .spec.user } }
        manifests:
          - path: u/user.yaml
            document: { kind: ConfigMap, metadata: { name: "${{ inputs.user }}" } }
        destinations:
          - { matchLabels: { env: dev }, directory: u }
        """,
    )
    (pipeline.metadata / "destination-selectors.yaml").write_text(
        "- {directory: u, matchLabels: {env: prod}}\n"
    )
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"user": "hunter22"}})  # fmt: skip
    env = {**pipeline.env, "PW": "hunter22", "KRATIX_WORKFLOW_TYPE": "resource",
           "KRATIX_WORKFLOW_ACTION": "configure"}  # fmt: skip
    result = runner_in_process(["plan", *pipeline.args(), "--format", "json"], pipeline.work, env)
    assert result.returncode == 0, result.stderr
    assert "hunter22" not in result.stdout
    [plan] = json.loads(result.stdout)
    [manifest] = plan["manifests"]
    assert "would hold a secret's value" in manifest["error"] and "documents" not in manifest
    assert 'directory "u" already has destination selectors' in plan["destinations"]["error"]
    assert not list(pipeline.output.iterdir())
