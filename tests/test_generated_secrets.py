"""Generated secrets through the command line, as users meet them: `validate` refusing what
can't work, two `runner run`s keeping one value (plain and encrypted state), and a hostile step
that tries every way to get the value out."""

from __future__ import annotations

import base64
import json

import pytest

from runner.state import open_store
from runner.state.base import StateRef
from runner.state.encryption import EncryptedStore, Keys, StateKey
from tests.conftest import Completed, Pipeline, runner_in_process

KEY = base64.b64encode(b"K" * 32).decode()
KEY_NAME = "generated-secret.DB_PASSWORD"
REF = StateRef("create-db", "my-app-db", "default", "my-app", "default")

CREATE = """
secrets:
  DB_PASSWORD: { generate: { length: 24, charset: "abcdefghijkmnpqrstuvwxyz23456789-_" } }
state: { store: secret, name: my-app-db ENCRYPTION}
workdir: ../work
run:
  - argv: [sh, -c, 'cat > got.txt']
    stdin: "${{ secrets.DB_PASSWORD }}"
"""


def _stored_value(pipeline: Pipeline, encrypted: bool = False) -> str:
    store = open_store("local", str(pipeline.state_dir), {})
    if encrypted:
        store = EncryptedStore(store, Keys(StateKey(base64.b64decode(KEY), "test")))
    loaded = store.load(REF)
    assert loaded is not None
    return loaded.files[KEY_NAME].decode()


def _validate(pipeline: Pipeline) -> Completed:
    return runner_in_process(["validate", str(pipeline.steps)], pipeline.root, pipeline.env)


def _in_process(pipeline: Pipeline, verb: str, *rest: str, **env: str) -> Completed:
    """A verb that runs no command (`plan`, `state`), without an interpreter's start-up."""
    environ = {**pipeline.env, **env}
    return runner_in_process([verb, *pipeline.args(), *rest], pipeline.work, environ)


def test_validate_refuses_a_generated_secret_it_could_not_keep(pipeline: Pipeline) -> None:
    pipeline.step(
        "create-db",
        """
        secrets:
          DB_PASSWORD: { generate: { length: 4, charst: "ab" } }
          TOKEN: { generate: { length: 32, charset: "a a" }, mask: false }
        run: [[true]]
        """,
    )
    result = pipeline.validate()
    assert result.returncode == 2
    err = result.stderr
    assert (
        "create-db.yaml:7:30: spec.secrets.DB_PASSWORD.generate: secret DB_PASSWORD is "
        "generated on the first run and kept in the step's state, and this step has no state"
    ) in err
    assert 'hint: add "state: {store: secret, name: ...}" to the step' in err
    assert "spec.secrets.DB_PASSWORD.generate.length: must be at least 8, not 4" in err
    assert 'unknown field "charst"' in err and 'did you mean "charset"?' in err
    assert "spec.secrets.TOKEN.generate.charset: charset holds ' '" in err
    assert 'spec.secrets.TOKEN.mask: "mask" does not apply to a generated secret' in err


def test_validate_refuses_a_generated_secret_in_a_clear_configmap(pipeline: Pipeline) -> None:
    pipeline.step("create-db", CREATE.replace("store: secret", "store: configmap"))
    result = _validate(pipeline)
    assert result.returncode == 2
    assert "spec.state.store: secret DB_PASSWORD is generated" in result.stderr
    assert "a ConfigMap would hold it in clear" in result.stderr
    # Encrypted before it leaves the pod, a ConfigMap is fine.
    encrypted = ", encryption: {key: {env: STATE_KEY}}"
    pipeline.step(
        "create-db",
        CREATE.replace("store: secret", "store: configmap").replace(" ENCRYPTION", encrypted),
    )
    assert _validate(pipeline).returncode == 0


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_two_runs_keep_one_generated_value(pipeline: Pipeline, encrypted: bool) -> None:
    encryption = ", encryption: {key: {env: STATE_KEY}}" if encrypted else ""
    pipeline.step("create-db", CREATE.replace(" ENCRYPTION", encryption))
    env = {"STATE_KEY": KEY}
    first = pipeline.run("run", "create-db", env=env)
    assert first.returncode == 0, first.stderr
    value = _stored_value(pipeline, encrypted)
    assert len(value) == 24 and set(value) <= set("abcdefghijkmnpqrstuvwxyz23456789-_")
    assert (pipeline.work / "got.txt").read_text() == value
    assert "generated secret DB_PASSWORD: saved to local" in first.stderr
    if encrypted:  # nothing in the store's files holds the value in clear
        for path in pipeline.state_dir.rglob("*"):
            assert not path.is_file() or value.encode() not in path.read_bytes()
    (pipeline.work / "got.txt").unlink()
    second = pipeline.run("run", "create-db", env=env)
    assert second.returncode == 0, second.stderr
    assert (pipeline.work / "got.txt").read_text() == value
    assert "generated secret DB_PASSWORD: kept in local" in second.stderr
    plan = _in_process(pipeline, "plan", "create-db", **env)
    assert plan.returncode == 0, plan.stderr
    assert "stdin: (not shown; its size is known when the step runs)" in plan.stdout
    assert value not in plan.stdout + plan.stderr
    assert "saved to" not in second.stderr
    assert _stored_value(pipeline, encrypted) == value


HOSTILE = """
secrets:
  DB_PASSWORD: { generate: { length: 32 } }
state: { store: secret, name: my-app-db }
workdir: ../work
run:
  - script: |
      echo "plain $DB_PASSWORD"
      echo "err $DB_PASSWORD" >&2
      printf %s "$DB_PASSWORD" | base64
      printf %s "$DB_PASSWORD" | od -An -tx1 | tr -d ' \\n'; echo
      printf '{"password": "%s"}\\n' "$DB_PASSWORD"
      printf %s "$DB_PASSWORD" > pw.txt
      mkdir -p out && printf 'password: %s\\n' "$DB_PASSWORD" > out/leak.yaml
outputs:
  leaked: { file: pw.txt }
status:
  password: { file: pw.txt, query: . }
"""


def test_a_generated_secret_never_shows_in_any_output(pipeline: Pipeline) -> None:
    pipeline.step("create-db", HOSTILE)
    run = pipeline.run("run", "create-db")
    value = _stored_value(pipeline)
    # The output reading the password's file is not sensitive: the runner refuses it.
    assert run.returncode == 1
    assert 'output "leaked": holds a secret\'s value' in run.stderr
    plan = _in_process(pipeline, "plan", "create-db")
    show = _in_process(pipeline, "state", "show", "create-db")
    assert "generated-secret.DB_PASSWORD: a generated secret, not shown" in show.stdout
    raw = _in_process(pipeline, "state", "show", "create-db", "--key", KEY_NAME)
    assert raw.returncode == 2 and "is a generated secret: never shown" in raw.stderr
    assert "generated (32 characters) on the first run" in plan.stdout
    # A status that would show it: masked (the step's status is written only when it succeeds).
    pipeline.step("create-db", HOSTILE.replace("  leaked: { file: pw.txt }\n", "  {}\n"))
    ok = pipeline.run("run", "create-db")
    assert ok.returncode == 0, ok.stderr
    assert pipeline.status()["password"] == "***"
    forms = {
        value,
        base64.b64encode(value.encode()).decode(),
        base64.b64encode(value.encode()).decode().rstrip("="),
        value.encode().hex(),
        value.encode().hex().upper(),
        json.dumps(value),
    }
    seen = [run.stdout, run.stderr, ok.stdout, ok.stderr, plan.stdout, plan.stderr]
    seen += [show.stdout, show.stderr, raw.stdout, raw.stderr]
    seen += [p.read_text() for p in pipeline.metadata.rglob("*") if p.is_file()]
    seen += [p.read_text() for p in pipeline.output.rglob("*") if p.is_file()]
    for text in seen:
        for form in forms:
            assert form not in text
    assert "plain ***" in ok.stdout and "err ***" in ok.stderr


def test_a_generated_secret_follows_the_rules_of_every_secret(pipeline: Pipeline) -> None:
    long_name = "P" * 240  # its state key would pass the 253 characters of a key
    pipeline.step(
        "create-db",
        f"""
        secrets:
          DB_PASSWORD: {{ generate: {{ length: 32, charset: "${{{{ inputs.x }}}}" }} }}
          {long_name}: {{ generate: {{ length: 32 }} }}
        state: {{ store: secret, name: my-app-db }}
        run:
          - [echo, "${{{{ secrets.DB_PASSWORD }}}}"]
        status:
          password: "${{{{ secrets.DB_PASSWORD }}}}"
        """,
    )
    result = _validate(pipeline)
    assert result.returncode == 2
    err = result.stderr
    assert "spec.secrets.DB_PASSWORD.generate.charset: templates are not expanded here" in err
    assert "charset holds" not in err  # a template is reported as one, not as odd characters
    assert 'spec.run[0][1]: secrets are never templated (found "DB_PASSWORD")' in err
    assert 'spec.status.password: secrets are never templated (found "DB_PASSWORD")' in err
    assert f'is kept under the state key "generated-secret.{long_name}", which the store' in err


KEEPER = """
    secrets: { PW: { generate: { length: 24 } } }
    state: { store: local, name: keeper, files: [{path: st.txt}] }
    workdir: ../work
    run: [{ argv: [sh, -c, 'echo "pw: $PW" > st.txt; echo "$PW" > pw.txt'] }]
"""


def test_state_show_key_masks_a_generated_secret_a_state_file_holds(pipeline: Pipeline) -> None:
    """Terraform keeps a password it was given in its state file in clear: `show --key` of
    that file masks the generated value, as every line the runner prints."""
    pipeline.step("keeper", KEEPER)
    assert pipeline.run("run").returncode == 0
    value = (pipeline.work / "pw.txt").read_text().strip()
    shown = pipeline.run("state", "show", "keeper", "--key", "st.txt")
    assert shown.returncode == 0, shown.stderr
    assert value not in shown.stdout and "pw: ***" in shown.stdout


@pytest.mark.parametrize("kept", [b"ab", b"abcd\x00efgh", b"\t\t\t\t\t\t\t\t\t"])
def test_a_kept_value_this_runner_could_not_have_made_is_exit_3(
    pipeline: Pipeline, kept: bytes
) -> None:
    pipeline.step("keeper", KEEPER)
    assert pipeline.run("run").returncode == 0
    store = open_store("local", str(pipeline.state_dir), {})
    ref = StateRef("keeper", "keeper", "default", "my-app", "default")
    loaded = store.load(ref)
    assert loaded is not None
    store.save(ref, {**loaded.files, "generated-secret.PW": kept})
    result = pipeline.run("run")
    assert result.returncode == 3, result.stderr
    assert "not printable text of at least 8 characters" in result.stderr
