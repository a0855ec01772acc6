"""Sensitive values stay out of logs and files: what feeds them is not echoed, `stdin:` carries
them to commands, and whatever is built from them is sensitive too.

Each test runs the runner as a pipeline container does (subprocess, real files); the Terraform
one runs the real Terraform 1.0.3 through the built-in `terraform-apply` template.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Pipeline

TOKEN = "tok-12345"
# Prints TOKEN without holding it in argv (argv is logged as it is run).
MAKE_TOKEN = "[sh, -c, 'printf tok-%s 12345']"
# As Terraform's random_password makes them: Go's JSON escapes &, < and > as \u0026 etc.
PASSWORD = "Tr0ub4dor&3<x>"


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_stdout_that_feeds_a_sensitive_output_is_not_echoed(pipeline: Pipeline) -> None:
    pipeline.step(
        "mint",
        f"""
        workdir: ../work
        run: [{{ argv: {MAKE_TOKEN}, stdout: t.txt }}]
        outputs: {{ tok: {{ file: t.txt, sensitive: true }} }}
        """,
    )
    result = ok(pipeline.run("run"))
    assert TOKEN not in result.stdout + result.stderr
    assert "its stdout goes only to t.txt, not to the log (a sensitive output reads it)" in (
        result.stderr
    )
    assert (pipeline.work / "t.txt").read_text() == TOKEN  # the file still gets it all


def test_stdout_in_a_command_folder_that_feeds_a_sensitive_output_is_not_echoed(
    pipeline: Pipeline,
) -> None:
    (pipeline.work / "sub").mkdir()
    pipeline.step(
        "mint",
        f"""
        workdir: ../work
        run: [{{ argv: {MAKE_TOKEN}, workdir: sub, stdout: t.txt }}]
        outputs: {{ tok: {{ file: sub/t.txt, sensitive: true }} }}
        """,
    )
    result = ok(pipeline.run("run"))
    assert TOKEN not in result.stdout + result.stderr


def test_echo_false_keeps_stdout_out_of_the_log(pipeline: Pipeline) -> None:
    pipeline.step(
        "quiet",
        """
        workdir: ../work
        run:
          - { argv: [printf, '%s-%s', not-for, the-log], stdout: o.txt, echo: false }
          - [echo, for-the-log]
        """,
    )
    result = ok(pipeline.run("run"))
    assert "not-for-the-log" not in result.stdout + result.stderr
    assert "for-the-log" in result.stdout  # commands' output goes to stdout
    assert "(echo: false)" in result.stderr
    assert (pipeline.work / "o.txt").read_text() == "not-for-the-log"


def test_stdin_carries_a_secret_to_the_command_and_is_never_shown(pipeline: Pipeline) -> None:
    pipeline.step(
        "login",
        """
        secrets: { PW: { env: DB_PASSWORD } }
        inputs: { name: { query: .metadata.name } }
        workdir: ../work
        run:
          - argv: [sh, -c, 'cat > got.txt']
            stdin: "user=${{ inputs.name }}\\npassword=${{ secrets.PW }}\\n"
        """,
    )
    result = ok(pipeline.run("run", env={"DB_PASSWORD": PASSWORD}))
    assert (pipeline.work / "got.txt").read_text() == f"user=my-app\npassword={PASSWORD}\n"
    assert PASSWORD not in result.stderr + result.stdout
    plan = ok(pipeline.run("plan", "--format", "json", env={"DB_PASSWORD": PASSWORD}))
    (command,) = json.loads(plan.stdout)[0]["commands"]
    assert (
        command["stdin"]
        == f"({len(f'user=my-app{chr(10)}password={PASSWORD}{chr(10)}')} bytes, not shown)"
    )
    assert PASSWORD not in plan.stdout + plan.stderr
    assert "user=my-app" not in plan.stdout  # none of its text, not only the secret


def test_stdin_larger_than_a_pipe_reaches_the_command_whole(pipeline: Pipeline) -> None:
    big = "x" * 100_000  # a pipe holds 64 KiB: the runner must write as the command reads
    pipeline.request({"apiVersion": "x/v1", "kind": "A", "metadata": {"name": "n"},
                      "spec": {"big": big}})  # fmt: skip
    pipeline.step(
        "big",
        """
        inputs: { big: { query: .spec.big } }
        workdir: ../work
        run:
          - { argv: [sh, -c, 'wc -c > n.txt'], stdin: "${{ inputs.big }}" }
          - { argv: [head, -c, "1"], stdin: "${{ inputs.big }}" }  # stops reading early
        """,
    )
    ok(pipeline.run("run"))
    assert (pipeline.work / "n.txt").read_text().strip() == str(len(big))


def test_an_unknown_secret_in_stdin_is_refused_with_a_hint(pipeline: Pipeline) -> None:
    pipeline.step(
        "login",
        """
        secrets: { DB_PASSWORD: { env: DB_PASSWORD } }
        run: [{ argv: [cat], stdin: "${{ secrets.DB_PASWORD }}" }]
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    assert 'spec.run[0].stdin: unknown secret "DB_PASWORD"' in result.stderr
    assert 'did you mean "secrets.DB_PASSWORD"?' in result.stderr


def test_a_secret_is_still_refused_in_argv(pipeline: Pipeline) -> None:
    pipeline.step(
        "login",
        """
        secrets: { DB_PASSWORD: { env: DB_PASSWORD } }
        run: [[psql, "${{ secrets.DB_PASSWORD }}"]]
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    assert 'secrets are never templated (found "DB_PASSWORD")' in result.stderr


def test_an_output_built_from_a_sensitive_one_is_refused_in_status_and_manifests(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "mint",
        """
        run: [{ argv: [printf, x], stdout: t.txt }]
        outputs:
          tok: { file: t.txt, sensitive: true }
          quoted: { jmespath: "to_yaml(outputs.tok)" }
        status: { t: "${{ outputs.quoted }}" }
        manifests:
          - { path: a.yaml, document: { kind: ConfigMap, data: { t: "${{ outputs.quoted }}" } } }
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    said = '"outputs.quoted" is sensitive (it is built from outputs.tok): it would be written to a file'
    assert f"spec.status.t: {said}" in result.stderr
    assert f"spec.manifests[0].document.data.t: {said}" in result.stderr


def test_a_value_built_from_another_steps_sensitive_output_is_refused_in_argv(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "mint",
        """
        run: [{ argv: [printf, x], stdout: t.txt }]
        outputs: { tok: { file: t.txt, sensitive: true } }
        """,
        file="00-mint.yaml",
    )
    pipeline.step(
        "use",
        """
        values: { up: { jmespath: "upper(steps.mint.outputs.tok)" } }
        env: { TOKEN: "${{ values.up }}" }
        run: [[echo, "${{ values.up }}"]]
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    assert (
        'spec.run[0][1]: "values.up" is built from steps.mint.outputs.tok, which is sensitive: '
        "argv is logged and visible to every process"
    ) in result.stderr
    assert "pass it to the command in env: or stdin:" in result.stderr
    assert "spec.env.TOKEN" not in result.stderr  # env is where it may go


def test_sensitivity_follows_outputs_across_steps(pipeline: Pipeline) -> None:
    # mint marks tok; relay passes it on unmarked; report writes relay's output: refused.
    pipeline.step(
        "mint",
        """
        run: [{ argv: [printf, x], stdout: t.txt }]
        outputs: { tok: { file: t.txt, sensitive: true } }
        """,
        file="00-mint.yaml",
    )
    pipeline.step(
        "relay",
        "outputs: { again: { jmespath: steps.mint.outputs.tok } }\n",
        file="10-relay.yaml",
    )
    pipeline.step("report", "status: { t: '${{ steps.relay.outputs.again }}' }\n", file="20.yaml")
    result = pipeline.validate()
    assert result.returncode == 2
    assert (
        'spec.status.t: "steps.relay.outputs.again" is sensitive: it would be written to a file'
    ) in result.stderr


def test_an_output_built_from_a_sensitive_one_is_recorded_sensitive_and_masked_later(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "mint",
        f"""
        workdir: ../work
        run: [{{ argv: {MAKE_TOKEN}, stdout: t.txt }}]
        outputs:
          tok: {{ file: t.txt, sensitive: true }}
          shouted: {{ jmespath: "upper(outputs.tok)" }}
        """,
        file="00-mint.yaml",
    )
    pipeline.step(
        "show",
        """
        env: { T: "${{ steps.mint.outputs.shouted }}" }
        run: [[sh, -c, 'echo "got $T"']]
        """,
        file="10-show.yaml",
    )
    ok(pipeline.run("run", "mint"))
    recorded = json.loads((pipeline.metadata / "runner" / "outputs" / "mint.json").read_text())
    assert recorded["sensitive"] == ["shouted", "tok"]
    # A later container of the Pipeline: the value built from the token is masked there too.
    second = ok(pipeline.run("run", "show"))
    assert TOKEN.upper() not in second.stdout + second.stderr
    assert "got ***" in second.stdout


def test_terraform_apply_template_never_echoes_terraform_output(
    pipeline: Pipeline, real_terraform: Path
) -> None:
    module = pipeline.root / "terraform" / "secret-out"
    module.mkdir(parents=True)
    (module / "main.tf").write_text(
        'variable "password" {\n  type = string\n  sensitive = true\n}\n'
        'output "password" {\n  value = var.password\n  sensitive = true\n}\n'
        'output "url" {\n  value = "https://db.example"\n}\n'
    )
    pipeline.step(
        "db",
        """
        uses: terraform-apply
        with: { module: ../terraform/secret-out, stateName: db-state, store: local }
        secrets: { TF_VAR_password: { env: DB_PASSWORD } }
        outputs:
          password: { file: outputs.json, query: .password.value, sensitive: true }
        status: { url: { file: outputs.json, query: .url.value } }
        """,
    )
    home = pipeline.root / "home"
    home.mkdir()
    env = {
        "PATH": f"{real_terraform}{os.pathsep}{pipeline.env['PATH']}",
        "HOME": str(home),
        "CHECKPOINT_DISABLE": "1",
        "DB_PASSWORD": PASSWORD,
    }
    assert shutil.which("terraform", path=env["PATH"]) == str(real_terraform / "terraform")
    result = ok(pipeline.run("run", "--state-store", f"local:{pipeline.state_dir}", env=env))
    log = result.stdout + result.stderr
    for form in (PASSWORD, json.dumps(PASSWORD)[1:-1], "Tr0ub4dor\\u00263\\u003cx\\u003e"):
        assert form not in log, f"{form!r} leaked:\n{log}"
    assert "its stdout goes only to outputs.json, not to the log" in log
    assert pipeline.status()["url"] == "https://db.example"


def test_an_expression_reading_the_whole_context_is_as_sensitive_as_what_it_may_reach(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "mint",
        """
        run: [{ argv: [printf, x], stdout: token.txt }]
        outputs:
          token: { file: token.txt, sensitive: true }
          rev: { jmespath: "reverse(@ | outputs.token)" }
          up:  { jmespath: "upper(*.token | [0])" }
        status: { r: "${{ outputs.rev }}", u: "${{ outputs.up }}" }
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    assert (
        'spec.status.r: "outputs.rev" is sensitive (it is built from outputs.token)'
        in result.stderr
    )
    assert (
        'spec.status.u: "outputs.up" is sensitive (it is built from outputs.token)' in result.stderr
    )


def test_a_long_secret_masks_multi_line_output_without_hanging(pipeline: Pipeline) -> None:
    import base64
    import os as _os

    token = base64.urlsafe_b64encode(_os.urandom(990)).decode()  # a 1,320-character JWT-like token
    pipeline.step(
        "many",
        """
        secrets: { K: { env: LONG_TOKEN } }
        run: [[seq, "1", "20"]]
        """,
    )
    result = ok(pipeline.run("run", env={"LONG_TOKEN": token}, timeout=30))
    assert "20" in result.stdout
