"""`runner run` and `runner plan` on the v3 language (first part): substr and shorten, `[]` in
set paths, a literal `$${{`, nested status data, Kubernetes' string-only places, a step whose
only effect is `output:`. Run as a pipeline container runs them."""

from __future__ import annotations

import hashlib
import json
import sys

import yaml

from tests.conftest import Pipeline

PY = sys.executable
LONG = "team-platform-payments-postgres-primary-database-in-the-eu-west-region"


def _documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_substr_and_shorten_make_names_that_fit(pipeline: Pipeline) -> None:
    pipeline.step(
        "names",
        """
        inputs: { name: { query: .metadata.name } }
        values:
          dbName: { jmespath: "shorten(join('_', split(inputs.name, '-')), `63`)" }
          short: { jmespath: "shorten(inputs.name, `63`)" }
          team: { jmespath: "substr(inputs.name, `0`, `4`)" }
          rest: { jmespath: "substr(inputs.name, `60`, `100`)" }
        status:
          dbName: "${{ values.dbName }}"
          short: "${{ values.short }}"
          team: "${{ values.team }}"
          rest: "${{ values.rest }}"
        """,
    )
    pipeline.request({"metadata": {"name": LONG}, "spec": {}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    underscored = LONG.replace("-", "_")
    digest = hashlib.sha256(underscored.encode()).hexdigest()[:8]
    assert pipeline.status() == {
        "dbName": f"{underscored[:54]}-{digest}",
        "short": f"{LONG[:54]}-{hashlib.sha256(LONG.encode()).hexdigest()[:8]}",
        "team": "team",
        "rest": LONG[60:],
    }
    assert len(pipeline.status()["dbName"]) == 63


def test_a_negative_substr_start_stops_the_step_before_its_commands(pipeline: Pipeline) -> None:
    pipeline.step(
        "names",
        f"""
        inputs: {{ cut: {{ query: .spec.cut, default: 0 }} }}
        values: {{ part: {{ jmespath: "substr('postgres', inputs.cut)" }} }}
        workdir: ../work
        run: [[{PY}, -c, "open('ran', 'w')"]]
        """,
    )
    pipeline.request({"metadata": {"name": "a"}, "spec": {"cut": -2}})
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "spec.values.part.jmespath:" in result.stderr
    assert "substr() needs start of 0 or more, not a negative number" in result.stderr
    assert not (pipeline.work / "ran").exists()


MONGO = """
inputs: { secret: { query: .spec.secretName, default: app-users } }
manifests:
  - path: mongodb.yaml
    from: ../templates/mongodb.yaml
    set: { ".spec.users[].passwordSecretRef.name": "${{ inputs.secret }}" }
"""


def _mongo_base(pipeline: Pipeline, users: str) -> None:
    templates = pipeline.root / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "mongodb.yaml").write_text(
        "apiVersion: mongodbcommunity.mongodb.com/v1\nkind: MongoDBCommunity\n"
        f"metadata: {{ name: db }}\nspec:\n  members: 3\n{users}"
    )


def test_every_element_of_a_list_gets_the_set_field(pipeline: Pipeline) -> None:
    _mongo_base(
        pipeline,
        "  users:\n    - { name: admin, db: admin }\n"
        "    - { name: app, passwordSecretRef: { key: password } }\n",
    )
    pipeline.step("mongo", MONGO)
    pipeline.request({"metadata": {"name": "a"}, "spec": {"secretName": "x\n- name: evil"}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    [doc] = _documents(pipeline.output / "mongodb.yaml")
    assert doc["spec"] == {
        "members": 3,
        "users": [
            {"name": "admin", "db": "admin", "passwordSecretRef": {"name": "x\n- name: evil"}},
            {"name": "app", "passwordSecretRef": {"key": "password", "name": "x\n- name: evil"}},
        ],
    }
    plan = json.loads(pipeline.run("plan", "--format", "json").stdout)
    [planned] = plan[0]["manifests"][0]["documents"]
    assert planned["spec"] == doc["spec"]


def test_a_missing_list_sets_nothing_and_creates_nothing(pipeline: Pipeline) -> None:
    _mongo_base(pipeline, "")
    pipeline.step("mongo", MONGO)
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    [doc] = _documents(pipeline.output / "mongodb.yaml")
    assert doc["spec"] == {"members": 3}


def test_every_on_a_mapping_fails_the_step_naming_the_path(pipeline: Pipeline) -> None:
    _mongo_base(pipeline, "  users: { admin: {} }\n")
    pipeline.step("mongo", MONGO)
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert (
        "cannot set .spec.users[].passwordSecretRef.name: .spec.users is a mapping, not a list"
        in result.stderr
    )
    assert not (pipeline.output / "mongodb.yaml").exists()


def test_a_doubled_dollar_writes_a_literal_template(pipeline: Pipeline) -> None:
    pipeline.step(
        "ci",
        f"""
        inputs: {{ name: {{ query: .metadata.name }} }}
        workdir: ../work
        run:
          - argv: [{PY}, -c, "import sys; open('argv', 'w').write(sys.argv[1])", "$${{{{ x }}}} ${{{{ inputs.name }}}}"]
        manifests:
          - path: workflow.yaml
            document:
              kind: ConfigMap
              data:
                run: "echo $${{{{ github.sha }}}} for ${{{{ inputs.name }}}}"
                whole: "$${{{{ secrets.TOKEN }}}}"
        status:
          note: "$${{{{ inputs.name }}}}"
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "argv").read_text() == "${{ x }} my-app"
    [doc] = _documents(pipeline.output / "workflow.yaml")
    assert doc["data"] == {
        "run": "echo ${{ github.sha }} for my-app",
        "whole": "${{ secrets.TOKEN }}",
    }
    assert pipeline.status() == {"note": "${{ inputs.name }}"}


NESTED = """
inputs:
  name: { query: .metadata.name }
  port: { query: .spec.port, type: integer, default: 5432 }
values:
  host: { jmespath: "join('.', [inputs.name, 'db'])" }
status:
  connection:
    host: "${{ values.host }}"
    port: "${{ inputs.port }}"
    url: "postgres://${{ values.host }}:${{ inputs.port }}"
    tags: ["${{ inputs.name }}", primary, "$${{ literal }}"]
  message: ready
"""


def test_a_nested_status_value_is_rendered_typed(pipeline: Pipeline) -> None:
    pipeline.step("db", NESTED)
    pipeline.request({"metadata": {"name": "orders"}, "spec": {"port": 5433}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {
        "connection": {
            "host": "orders.db",
            "port": 5433,
            "url": "postgres://orders.db:5433",
            "tags": ["orders", "primary", "${{ literal }}"],
        },
        "message": "ready",
    }


def test_plan_shows_a_nested_status_value_rendered(pipeline: Pipeline) -> None:
    pipeline.step("db", NESTED)
    pipeline.request({"metadata": {"name": "orders"}, "spec": {"port": 5433}})
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["status"]["connection"]["port"] == 5433
    assert plan["status"]["connection"]["tags"] == ["orders", "primary", "${{ literal }}"]
    assert not (pipeline.metadata / "status.yaml").exists()


def test_a_status_value_read_from_a_file_still_reads_the_file(pipeline: Pipeline) -> None:
    pipeline.step(
        "db",
        f"""
        workdir: ../work
        run: [[{PY}, -c, "open('out.json', 'w').write('{{\\"url\\": {{\\"value\\": 7}}}}')"]]
        status:
          url: {{ file: out.json, query: .url.value }}
          shape: {{ query: not-a-query, jmespath: data }}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {"url": 7, "shape": {"query": "not-a-query", "jmespath": "data"}}


STRING_ONLY = """
inputs:
  name: { query: .metadata.name }
  port: { query: .spec.port, type: integer }
  debug: { query: .spec.debug, type: boolean, default: false }
  extra: { query: .spec.extra, default: null }
manifests:
  - path: app.yaml
    documents:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: "${{ inputs.name }}"
          labels: { port: "${{ inputs.port }}", debug: "${{ inputs.debug }}" }
          annotations: { extra: "${{ inputs.extra }}" }
        data: { port: "${{ inputs.port }}", debug: "${{ inputs.debug }}", extra: "${{ inputs.extra }}" }
      - apiVersion: v1
        kind: Secret
        metadata: { name: "${{ inputs.name }}" }
        stringData: { port: "${{ inputs.port }}" }
      - apiVersion: apps/v1
        kind: Deployment
        metadata: { name: "${{ inputs.name }}" }
        spec:
          replicas: "${{ inputs.port }}"
          template:
            metadata: { labels: { debug: "${{ inputs.debug }}" } }
            spec:
              initContainers: [{ name: init, env: [{ name: PORT, value: "${{ inputs.port }}" }] }]
              containers:
                - name: app
                  env:
                    - { name: PORT, value: "${{ inputs.port }}" }
                    - { name: DEBUG, value: "${{ inputs.debug }}" }
                  ports: [{ containerPort: "${{ inputs.port }}" }]
      - apiVersion: batch/v1
        kind: CronJob
        metadata: { name: "${{ inputs.name }}" }
        spec:
          jobTemplate:
            spec:
              template:
                spec:
                  containers: [{ name: c, env: [{ name: PORT, value: "${{ inputs.port }}" }] }]
      - apiVersion: example.com/v1
        kind: Database
        metadata: { name: "${{ inputs.name }}" }
        data: { port: "${{ inputs.port }}" }
"""


def test_kubernetes_string_only_places_are_written_as_text(pipeline: Pipeline) -> None:
    pipeline.step("app", STRING_ONLY)
    pipeline.request({"metadata": {"name": "orders"}, "spec": {"port": 5433, "debug": True}})
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    text = (pipeline.output / "app.yaml").read_text()
    assert "  port: '5433'\n" in text  # a YAML string: the API server takes the ConfigMap
    config, secret, deployment, cron, custom = _documents(pipeline.output / "app.yaml")
    assert config["data"] == {"port": "5433", "debug": "true", "extra": ""}
    assert config["metadata"]["labels"] == {"port": "5433", "debug": "true"}
    assert config["metadata"]["annotations"] == {"extra": ""}
    assert secret["stringData"] == {"port": "5433"}
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 5433  # not a string-only place: typed
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"debug": "true"}
    assert pod["containers"][0]["env"] == [
        {"name": "PORT", "value": "5433"},
        {"name": "DEBUG", "value": "true"},
    ]
    assert pod["containers"][0]["ports"] == [{"containerPort": 5433}]
    assert pod["initContainers"][0]["env"] == [{"name": "PORT", "value": "5433"}]
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["env"] == [{"name": "PORT", "value": "5433"}]
    assert custom["data"] == {"port": 5433}  # only a ConfigMap's or Secret's data


def test_a_base_file_set_into_a_configmap_is_text_too(pipeline: Pipeline) -> None:
    templates = pipeline.root / "templates"
    templates.mkdir()
    (templates / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    pipeline.step(
        "cm",
        """
        inputs: { port: { query: .spec.port, type: integer } }
        manifests:
          - path: cm.yaml
            from: ../templates/cm.yaml
            set: { .data.port: "${{ inputs.port }}" }
        """,
    )
    pipeline.request({"metadata": {"name": "a"}, "spec": {"port": 5433}})
    assert pipeline.run("run").returncode == 0
    assert _documents(pipeline.output / "cm.yaml")[0]["data"] == {"port": "5433"}
    plan = pipeline.run("plan", "--format", "json")
    assert json.loads(plan.stdout)[0]["manifests"][0]["documents"][0]["data"] == {"port": "5433"}


def test_a_step_whose_only_effect_is_output_copies_its_files(pipeline: Pipeline) -> None:
    files = pipeline.root / "files"
    (files / "crds").mkdir(parents=True)
    (files / "crds" / "crd.yaml").write_text("kind: CustomResourceDefinition\n")
    pipeline.step("crds", "workdir: ../files\noutput:\n  - { from: crds/, to: dependencies/ }\n")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    copied = pipeline.output / "dependencies" / "crd.yaml"
    assert copied.read_text() == "kind: CustomResourceDefinition\n"


def test_a_doubled_dollar_in_a_step_template_means_the_same(pipeline: Pipeline) -> None:
    (pipeline.steps / "templates").mkdir()
    (pipeline.steps / "templates" / "price.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\nmetadata:\n  name: price\n"
        "spec:\n  params: { amount: { type: string } }\n"
        "  inputs: { name: { query: .metadata.name } }\n"
        '  status: { price: "$$${{ params.amount }}", name: "$$${{ inputs.name }}",'
        ' literal: "$${{ params.amount }}" }\n'
    )
    pipeline.step("a", "uses: price\nwith: { amount: '12' }\n")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert pipeline.status() == {
        "price": "$12",
        "name": "$my-app",
        "literal": "${{ params.amount }}",
    }
