"""`runner run` on the Promise language: values, if, retries, outputs (also across runs),
manifests, destinations, waitFor and suspend, run as a pipeline container runs them."""

from __future__ import annotations

import json
import sys

import yaml

from runner.base.source import read_yaml_file
from runner.platform.kratix_yaml import GO_YAML
from tests.conftest import Pipeline

PY = sys.executable
SECRET = "s3cr3t-Value-42"

REDIS = """
inputs:
  name: { query: .metadata.name }
  size: { query: .spec.size, default: small, enum: [small, large] }
values:
  replicas: { from: inputs.size, map: { small: 1, large: 3 } }
manifests:
  - path: redis/instance.yaml
    from: ../templates/redis.yaml
    set:
      .metadata.name: "${{ inputs.name }}"
      .spec.redis.replicas: "${{ values.replicas }}"
      .spec.sentinel.replicas: "${{ values.replicas }}"
"""


def _base(pipeline: Pipeline) -> None:
    templates = pipeline.root / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "redis.yaml").write_text(
        "apiVersion: databases.spotahome.com/v1\nkind: RedisFailover\n"
        "metadata: { name: NAME, namespace: default }\n"
        "spec:\n  redis: { replicas: 3, image: redis:7 }\n  sentinel: { replicas: 3 }\n"
    )


def kratix_reads(path):
    """The documents of a file as Kratix (go-yaml v2 scalars) reads them."""
    docs, problems = read_yaml_file(path, scalars=GO_YAML)
    assert not problems, problems
    return [d.value for d in docs] if len(docs) != 1 else docs[0].value


def _documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# -- values, typed manifests, no injection -----------------------------------------------------


def test_a_lookup_value_patches_a_base_manifest_with_its_type(pipeline: Pipeline) -> None:
    _base(pipeline)
    pipeline.step("redis", REDIS)
    pipeline.request({"metadata": {"name": "cache"}, "spec": {"size": "large"}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    [doc] = _documents(pipeline.output / "redis" / "instance.yaml")
    assert doc["metadata"] == {"name": "cache", "namespace": "default"}
    assert doc["spec"]["redis"] == {"replicas": 3, "image": "redis:7"}  # an int, not "3"
    assert doc["spec"]["sentinel"]["replicas"] == 3


def test_a_request_value_cannot_add_keys_or_documents(pipeline: Pipeline) -> None:
    _base(pipeline)
    pipeline.step("redis", REDIS)
    hostile = 'x\n---\nkind: Secret\nmetadata: {name: stolen}\n"yes": on # '
    pipeline.request({"metadata": {"name": hostile}, "spec": {}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    text = (pipeline.output / "redis" / "instance.yaml").read_text()
    [doc] = [d for d in yaml.safe_load_all(text) if d is not None]
    assert doc["metadata"]["name"] == hostile and doc["kind"] == "RedisFailover"
    path = pipeline.output / "redis" / "instance.yaml"
    assert kratix_reads(path)["metadata"]["name"] == hostile  # as Kratix reads it, too


def test_a_value_with_no_map_entry_stops_before_any_command(pipeline: Pipeline) -> None:
    pipeline.step(
        "v",
        f"""
        inputs: {{ size: {{ query: .spec.size }} }}
        values: {{ r: {{ from: inputs.size, map: {{ small: 1 }} }} }}
        workdir: ../work
        run: [[{PY}, -c, "open('ran', 'w')"]]
        """,
    )
    pipeline.request({"metadata": {"name": "a"}, "spec": {"size": "huge"}})
    result = pipeline.run("run")
    assert result.returncode == 2
    assert 'spec.values.r.from: value "r": inputs.size is "huge", and map has no entry' in result.stderr
    assert "map keys: small" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_an_expression_type_error_names_the_field_expression_and_type(pipeline: Pipeline) -> None:
    pipeline.step(
        "v",
        f"""
        inputs: {{ port: {{ query: .spec.port, default: 80 }} }}
        values: {{ p: {{ jmespath: "lower(inputs.port)" }} }}
        workdir: ../work
        run: [[{PY}, -c, "open('ran', 'w')"]]
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 2
    assert "spec.values.p.jmespath:" in result.stderr
    assert "lower(inputs.port)" in result.stderr and "not an integer" in result.stderr
    assert not (pipeline.work / "ran").exists()


# -- if ------------------------------------------------------------------------------------------


def test_a_step_whose_if_is_false_is_skipped(pipeline: Pipeline) -> None:
    pipeline.step(
        "db",
        f"""
        inputs: {{ driver: {{ query: .spec.driver, default: "" }} }}
        if: "inputs.driver == 'postgresql'"
        workdir: ../work
        run: [[{PY}, -c, "open('ran', 'w')"]]
        status: {{ message: db }}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert "step db skipped: if: inputs.driver == 'postgresql' is false" in result.stderr
    assert not (pipeline.work / "ran").exists() and pipeline.status() == {}


def test_a_command_whose_if_is_false_is_skipped(pipeline: Pipeline) -> None:
    pipeline.step(
        "c",
        f"""
        inputs: {{ tier: {{ query: .spec.tier }} }}
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "open('large', 'w')"], if: "inputs.tier == 'large'" }}
          - [{PY}, -c, "open('always', 'w')"]
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert not (pipeline.work / "large").exists() and (pipeline.work / "always").exists()


# -- retries -------------------------------------------------------------------------------------

FLAKY = (
    "import pathlib, sys; p = pathlib.Path('tries'); n = int(p.read_text()) + 1 if p.exists() "
    "else 1; p.write_text(str(n)); sys.exit(0 if n >= 3 else 7)"
)


def test_a_command_that_fails_twice_succeeds_on_its_third_try(pipeline: Pipeline) -> None:
    pipeline.step(
        "r",
        f"""
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "{FLAKY}"], retry: {{ attempts: 4, delay: 10ms, backoff: 2 }} }}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "tries").read_text() == "3"
    assert "(try 2 of 4)" in result.stderr and "(try 3 of 4)" in result.stderr
    assert "(try 4 of 4)" not in result.stderr


def test_retries_stop_at_the_attempts_and_only_for_listed_codes(pipeline: Pipeline) -> None:
    pipeline.step(
        "r",
        f"""
        workdir: ../work
        retry: {{ attempts: 2, delay: 10ms }}
        run:
          - [{PY}, -c, "{FLAKY}"]
        """,
    )
    assert pipeline.run("run").returncode == 1
    assert (pipeline.work / "tries").read_text() == "2"  # the step's retry: two tries in all
    (pipeline.work / "tries").unlink()
    pipeline.step(
        "r",
        f"""
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "{FLAKY}"], retry: {{ attempts: 5, delay: 10ms, onExitCodes: [6] }} }}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1
    assert (pipeline.work / "tries").read_text() == "1"  # exit 7 is not one to retry
    assert "retrying" not in result.stderr


def test_a_timeout_is_never_retried(pipeline: Pipeline) -> None:
    pipeline.step(
        "t",
        f"""
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "import time; open('t', 'a').write('x'); time.sleep(5)"],
               timeout: 200ms, retry: {{ attempts: 3, delay: 10ms }} }}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1
    assert (pipeline.work / "t").read_text() == "x"


# -- outputs ---------------------------------------------------------------------------------------


def test_outputs_reach_status_and_a_later_run_of_the_pipeline(pipeline: Pipeline) -> None:
    pipeline.step(
        "make",
        """
        workdir: ../work
        run:
          - { argv: [PY, -c, "print('{\\"url\\": {\\"value\\": \\"http://x\\"}}')"], stdout: out.json }
        outputs:
          url: { file: out.json, query: .url.value }
          ready: { jmespath: "outputs.url != ''" }
        status: { url: "${{ outputs.url }}", ready: "${{ outputs.ready }}" }
        """.replace("PY", PY),
        file="10-make.yaml",
    )
    pipeline.step(
        "use",
        """
        status: { used: "${{ steps.make.outputs.url }}/api" }
        """,
        file="20-use.yaml",
    )
    first = pipeline.run("run", "make")
    assert first.returncode == 0, first.stderr
    assert pipeline.status() == {"url": "http://x", "ready": True}
    recorded = json.loads((pipeline.metadata / "runner" / "outputs" / "make.json").read_text())
    assert recorded["outputs"] == {"url": "http://x", "ready": True}
    second = pipeline.run("run", "use")  # another container of the same Pipeline
    assert second.returncode == 0, second.stderr
    assert pipeline.status()["used"] == "http://x/api"


def test_a_step_of_the_same_run_reads_an_earlier_steps_outputs(pipeline: Pipeline) -> None:
    pipeline.step(
        "first",
        """
        inputs: { name: { query: .metadata.name } }
        outputs: { id: { jmespath: "join('-', [inputs.name, 'db'])" } }
        """,
        file="10-first.yaml",
    )
    pipeline.step(
        "second",
        f"""
        workdir: ../work
        env: {{ ID: "${{{{ steps.first.outputs.id }}}}" }}
        run: [[{PY}, -c, "import os; open('id', 'w').write(os.environ['ID'])"]]
        """,
        file="20-second.yaml",
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "id").read_text() == "my-app-db"


def test_the_outputs_of_a_step_that_did_not_run_read_as_null(pipeline: Pipeline) -> None:
    pipeline.step("first", "outputs: { id: { jmespath: \"'a'\" } }\n", file="10-first.yaml")
    pipeline.step(
        "second",
        "status: { x: \"${{ steps.first.outputs.id }}\", t: \"id=${{ steps.first.outputs.id }}\" }\n",
        file="20-second.yaml",
    )
    result = pipeline.run("run", "second")  # first is not selected: it records nothing
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"x": None, "t": "id="}  # typed: null; in text: ""
    assert pipeline.run("run", "first", "second").returncode == 0  # earlier in the same run
    assert pipeline.status() == {"x": "a", "t": "id=a"}


def test_a_sensitive_output_is_masked_and_a_plain_one_may_not_hold_a_secret(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "tok",
        f"""
        secrets: {{ S: {{ env: THE_SECRET }} }}
        workdir: ../work
        run: [[{PY}, -c, "import os; open('t.txt', 'w').write('tok-' + os.environ['S'] + '\\\\n')"]]
        outputs: {{ token: {{ file: t.txt, sensitive: true }} }}
        """,
    )
    ok = pipeline.run("run", env={"THE_SECRET": SECRET})
    assert ok.returncode == 0, ok.stderr
    recorded = json.loads((pipeline.metadata / "runner" / "outputs" / "tok.json").read_text())
    assert recorded["sensitive"] == ["token"]
    pipeline.step(
        "tok",
        f"""
        secrets: {{ S: {{ env: THE_SECRET }} }}
        workdir: ../work
        run: [[{PY}, -c, "import os; open('t.txt', 'w').write(os.environ['S'])"]]
        outputs: {{ token: {{ file: t.txt }} }}
        """,
    )
    refused = pipeline.run("run", env={"THE_SECRET": SECRET})
    assert refused.returncode == 1
    assert 'output "token": holds a secret\'s value' in refused.stderr
    assert SECRET not in refused.stderr + refused.stdout


# -- manifests: secrets, paths ---------------------------------------------------------------------


def test_a_secret_in_a_manifest_is_refused_and_nothing_is_written(pipeline: Pipeline) -> None:
    # A request value that holds a secret: validate can't see it; the run refuses it.
    pipeline.step(
        "m",
        """
        inputs: { v: { query: .spec.v } }
        secrets: { S: { env: THE_SECRET } }
        manifests:
          - { path: a.yaml, document: { kind: ConfigMap, data: { ok: fine } } }
          - { path: b.yaml, document: { kind: ConfigMap, data: { v: "x-${{ inputs.v }}" } } }
        """,
    )
    pipeline.request({"apiVersion": "x/v1", "kind": "A", "metadata": {"name": "n"},
                      "spec": {"v": SECRET}})  # fmt: skip
    result = pipeline.run("run", "m", env={"THE_SECRET": SECRET})
    assert result.returncode == 1
    assert "would hold a secret's value; nothing was written" in result.stderr
    assert not (pipeline.output / "a.yaml").exists()
    assert SECRET not in result.stderr + result.stdout


def test_a_rendered_manifest_path_may_not_leave_the_output_folder(pipeline: Pipeline) -> None:
    pipeline.step(
        "m",
        """
        inputs: { name: { query: .metadata.name } }
        manifests: [{ path: "apps/${{ inputs.name }}.yaml", document: { kind: A } }]
        """,
    )
    pipeline.request({"metadata": {"name": "../../escape"}})
    result = pipeline.run("run")
    assert result.returncode == 1
    assert "must stay inside the output folder" in result.stderr
    assert not (pipeline.root / "kratix" / "escape.yaml").exists()


# -- destinations, waitFor, suspend ---------------------------------------------------------------


def test_destinations_are_written_and_a_second_selector_for_a_folder_refused(
    pipeline: Pipeline,
) -> None:
    pipeline.step(
        "d",
        """
        inputs: { tier: { query: .spec.tier } }
        destinations: [{ directory: redis, matchLabels: { env: "${{ inputs.tier }}", pci: true } }]
        """,
    )
    assert pipeline.run("run").returncode == 0
    path = pipeline.metadata / "destination-selectors.yaml"
    assert kratix_reads(path) == [
        {"matchLabels": {"env": "small", "pci": "true"}, "directory": "redis"}
    ]
    again = pipeline.run("run")  # another container selecting the same folder
    assert again.returncode == 1
    assert 'directory "redis" already has destination selectors' in again.stderr


def test_an_unmet_wait_asks_kratix_to_retry_and_stops_the_run_with_exit_0(pipeline: Pipeline) -> None:
    pipeline.step(
        "wait",
        """
        inputs: { name: { query: .metadata.name } }
        outputs: { ready: { jmespath: "`false`" } }
        status: { message: waiting }
        waitFor: { condition: outputs.ready, retryAfter: 45s, message: "db ${{ inputs.name }} not ready" }
        """,
        file="10-wait.yaml",
    )
    pipeline.step("after", "status: { after: ran }\n", file="20-after.yaml")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    control = kratix_reads(pipeline.metadata / "workflow-control.yaml")
    assert control == {"retryAfter": "45s", "message": "db my-app not ready"}
    assert pipeline.status() == {"message": "waiting"}  # written before waiting; no "after"


def test_a_met_wait_lets_the_next_step_run(pipeline: Pipeline) -> None:
    pipeline.step("wait", "outputs: { ready: { jmespath: '`true`' } }\nwaitFor: { condition: outputs.ready }\n", file="10-wait.yaml")
    pipeline.step("after", "status: { after: ran }\n", file="20-after.yaml")
    assert pipeline.run("run").returncode == 0
    assert pipeline.status() == {"after": "ran"}
    assert not (pipeline.metadata / "workflow-control.yaml").exists()


def test_suspend_writes_suspend_true(pipeline: Pipeline) -> None:
    pipeline.step(
        "approve",
        """
        inputs: { approved: { query: .spec.approved, default: false } }
        suspend: { if: "inputs.approved != `true`", message: waiting for approval }
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    control = kratix_reads(pipeline.metadata / "workflow-control.yaml")
    assert control == {"suspend": True, "message": "waiting for approval"}


# -- plan --------------------------------------------------------------------------------------------


def test_plan_shows_values_conditions_manifests_and_workflow_control(pipeline: Pipeline) -> None:
    _base(pipeline)
    pipeline.step(
        "redis",
        REDIS
        + 'if: "inputs.size != \'\'"\n'
        + "outputs: { ready: { jmespath: '`true`' } }\n"
        + "waitFor: { condition: outputs.ready, retryAfter: 30s }\n",
    )
    pipeline.request({"metadata": {"name": "cache"}, "spec": {"size": "large"}})
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["values"] == {"replicas": 3}
    assert plan["if"] == {"expression": "inputs.size != ''", "holds": True}
    [manifest] = plan["manifests"]
    assert manifest["documents"][0]["spec"]["redis"]["replicas"] == 3
    assert plan["workflowControl"]["met"] == "decided after the commands (it reads outputs)"
    assert plan["workflowControl"]["otherwise"] == {"retryAfter": "30s"}
    assert not (pipeline.output / "redis").exists()  # plan runs and writes nothing


def test_a_skipped_step_needs_no_secrets_and_renders_nothing(pipeline: Pipeline) -> None:
    pipeline.step("a", "if: '`false`'\noutputs: { x: { jmespath: \"'hi'\" } }\n", file="10-a.yaml")
    pipeline.step(
        "b",
        """
        if: '`false`'
        secrets: { TOKEN: { env: API_TOKEN } }
        status: { x: "${{ steps.a.outputs.x }}" }
        """,
        file="20-b.yaml",
    )
    pipeline.step("c", "status: { c: ran }\n", file="30-c.yaml")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert "step b skipped" in result.stderr
    assert pipeline.status() == {"c": "ran"}
