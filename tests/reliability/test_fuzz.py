"""Bad input, generated: mutated and random step files, random request documents (not a
mapping, binary, deeply nested, huge strings, unicode, alias bombs) and random secret values.
Whatever comes in, the runner exits 0, 1, 2 or 3 as documented, never prints a traceback, and
never prints a secret.

`runner validate` runs in-process (no signal handlers involved), many examples; `runner run`
runs as a subprocess per example, so those properties keep to a few dozen examples. Examples
are derandomized so CI is repeatable; RELIABILITY_FUZZ_RANDOM=1 explores afresh and
RELIABILITY_FUZZ_EXAMPLES=N takes N examples per subprocess property.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from urllib.parse import quote, quote_plus

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.cli import main as runner_main

RANDOM = bool(os.environ.get("RELIABILITY_FUZZ_RANDOM"))
EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES") or 60)
DOCUMENTED = {0, 1, 2, 3}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, derandomize=not RANDOM, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
    )


def no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text[-3000:]


# -- step files -----------------------------------------------------------------------------------

BASE_STEP = """\
apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata:
  name: fuzz
  description: A step to mutate.
spec:
  on:
    workflow: resource
    action: [configure]
  inputs:
    name: { query: .metadata.name }
    namespace: { query: .metadata.namespace, default: default }
    tier: { query: .spec.tier, default: small, enum: [small, large] }
    labels: { jmespath: "metadata.labels", type: object, required: false }
  secrets:
    TOKEN: { env: FUZZ_TOKEN, required: false }
  env:
    GREETING: "hello ${{ inputs.name }}"
  workdir: ../work
  copyWorkdir: true
  state:
    store: local
    name: "${{ inputs.name }}-state"
    files:
      - { path: state.txt, key: state }
    save: always
  run:
    - [echo, "${{ inputs.name }}", "${{ inputs.tier }}"]
    - { argv: [echo, "${{ inputs.labels }}"], stdout: out.json, timeout: 5s }
    - script: echo "$INPUT_NAME" > state.txt
  dryRun:
    - [echo, plan]
  status:
    message: "ready ${{ inputs.name }}"
    out: { file: out.json, query: .x, required: false }
  timeout: 20s
"""

# Replacement tokens: odd YAML, odd values, real keys in the wrong place. None of them is a
# command that could harm the machine or run for long (steps run for real below).
TOKENS = [
    "", "~", "null", "true", "false", "0", "-1", "1e999", "0x1F", "[]", "{}", "[echo]",
    "{argv: []}", "{script: ''}", "'${{ inputs.nope }}'", "${{", "}}", "${{ kratix.object.name }}",
    "${{ inputs.name", "&a x", "*a", "*undefined", "!!binary aGVsbG8=", "!!python/name:os.system",
    "!!set {a}", "ünïcødé", "😀", '"\\u0000"', ": :", "- -", "? x", "|", ">", "%YAML 1.2",
    "---", "...", "\t", "on", "no", "1d", "10m", "-5s", "99999999999h", "configure", "delete",
    "promise", "resource", "configmap", "secret", "none", "local", "on-success", "remove",
    "inputs", "spec", "run", "state", "files", "query", "jmespath", "default", "enum", "type",
    "workdir", "output", "status", "env", "secrets", "metadata", "name", "key", "path",
    ".a[", ".metadata.labels.\"x", "metadata.[", "`", "\"\"\"", "'", "#", "@", "%",
    "x" * 300, "A-Z_invalid name", "UPPER", "a" * 64,
]
# Values that keep a step valid, so that mutants also get past validation and run.
BENIGN = ["x", "hello", "small", "large", "5s", "1m", "state.txt", "out.json", "echo", "true",
          "default", "my-app", "'${{ inputs.tier }}'", "'${{ kratix.action }}'", ".spec.tier",
          ".metadata.name", "always", "on-success", "local", "none", "0", "1", "[a, b]"]

# Mostly value changes inside `spec:` (line 6 on), so many mutants still load and run.
LINE_OPS = st.sampled_from(["token"] * 10 + ["char"] * 3 + ["delete", "delete", "duplicate",
                            "duplicate", "swap", "indent", "truncate"])


@st.composite
def mutated_steps(draw: st.DrawFn) -> str:
    lines = BASE_STEP.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if len(lines) < 8:
            break
        op = draw(LINE_OPS)
        i = draw(st.integers(6, len(lines) - 1) | st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "token":
            parts = re.split(r"([\s:,{}\[\]\"]+)", lines[i])
            words = [k for k, p in enumerate(parts) if p and not re.fullmatch(r"[\s:,{}\[\]\"]+", p)]
            if words:
                parts[draw(st.sampled_from(words))] = draw(st.sampled_from(BENIGN)
                                                           | st.sampled_from(TOKENS))
                lines[i] = "".join(parts)
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["", " ", "  ", "    ", "\t"])) + lines[i].lstrip()
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            at = draw(st.integers(0, len(lines[i])))
            char = draw(st.sampled_from([*"{}[]:,-&*!|>'\"#%@`\\\t\x01\x7f\u2028é😀", "\r"]))
            lines[i] = lines[i][:at] + char + lines[i][at:]
    return "\n".join(lines) + "\n"


KEYS = ["apiVersion", "kind", "metadata", "name", "spec", "run", "inputs", "state", "workdir",
        "on", "action", "files", "store", "status", "env", "secrets", "output", "query", "x"]
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True) | st.text(max_size=20) | st.sampled_from(TOKENS))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def random_steps(draw: st.DrawFn) -> str:
    """A document shaped like a step (the right top-level keys), filled with random values."""
    doc = {
        "apiVersion": draw(st.sampled_from(["runner.kratix.dev/v1alpha1", "v1", ""]) | SCALARS),
        "kind": draw(st.sampled_from(["Step", "step"]) | SCALARS),
        "metadata": draw(st.fixed_dictionaries({"name": st.sampled_from(["fuzz", "Fuzz"]) | SCALARS}) | VALUES),
        "spec": draw(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)),
    }
    return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))


def test_the_base_step_is_valid_and_runs(pipeline, capsys):
    (pipeline.steps / "fuzz.yaml").write_text(BASE_STEP)
    assert runner_main(["validate", str(pipeline.steps)]) == 0, capsys.readouterr()
    result = pipeline.run("run", "fuzz")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@fuzz_settings(examples=300)
@given(text=mutated_steps() | random_steps())
def test_validate_never_crashes_on_a_bad_step_file(tmp_path, capsys, text, ledger):
    ledger["examples"] += 1
    path = tmp_path / "steps.d" / "fuzz.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    for argv in (["validate", str(path)], ["validate", "--format", "json", str(path)]):
        try:
            code = runner_main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        no_traceback(out + err)
        assert code in (0, 2), (code, err)
        event(f"validate exit {code}")
        if code == 2 and argv[1] != "--format":
            assert "fuzz.yaml" in err  # every problem names the file
        if argv[1] == "--format":
            report = json.loads(out)
            assert report["valid"] is (code == 0)


@pytest.mark.slow
@fuzz_settings(examples=EXAMPLES)
@given(text=mutated_steps())
def test_run_never_crashes_on_a_mutated_step_file(pipeline, text, ledger):
    ledger["examples"] += 1
    for old in pipeline.steps.iterdir():
        old.unlink()
    (pipeline.steps / "fuzz.yaml").write_text(text)
    result = pipeline.run("run", timeout=60, check_traceback=False)
    no_traceback(result.stdout + result.stderr)
    assert result.returncode in DOCUMENTED, result.stderr
    event(f"run exit {result.returncode}")


# -- requests -------------------------------------------------------------------------------------

REQUEST_STEP = """
    inputs:
      name: { query: .metadata.name }
      namespace: { query: .metadata.namespace, default: default }
      tier: { query: .spec.tier, default: small, enum: [small, large] }
      labels: { jmespath: metadata.labels, type: object, required: false }
      replicas: { query: .spec.replicas, type: integer, default: 1 }
      app: { query: '.metadata.labels."app.kubernetes.io/name" // "none"' }
    workdir: ../work
    copyWorkdir: true
    state: { store: local, name: "${{ inputs.name }}-state", files: [{ path: s.txt }] }
    run:
      - [echo, "${{ inputs.name }}", "${{ inputs.labels }}", "${{ inputs.replicas }}"]
      - script: printf '%s' "$INPUT_NAME" | head -c 100 > s.txt
    status:
      message: "ready ${{ inputs.name }} in ${{ inputs.namespace }}"
"""

WEIRD_STRINGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["x; rm -rf /", "$(touch pwned)", "`touch pwned`", "../../etc", "-rf", "--help",
                     "${{ inputs.name }}", "my-app", "MY_APP", "a" * 254, "é", "\u202e", "\ufeff"]),
    st.integers(1, 3).map(lambda m: "x" * (10 ** (m + 3))),  # 10 kB .. 10 MB
)


def _request(name) -> dict:
    return {"apiVersion": "x/v1", "kind": "App", "metadata": {"name": name, "namespace": "default"}}


def _deep_flow(depth: int) -> bytes:
    return ("metadata: {name: a}\nspec: " + "[" * depth + "]" * depth + "\n").encode()


def _deep_block(depth: int) -> bytes:
    return ("metadata:\n  name: a\nspec:\n" + "".join(f"{'  ' * (i + 1)}k:\n" for i in range(depth))
            + "  " * (depth + 1) + "v\n").encode()


BILLION_LAUGHS = (b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                  + b"".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode()
                             for i in range(8))
                  + b"metadata: {name: bomb, labels: *i}\n")

REQUESTS = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    VALUES.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),  # often not a mapping
    st.builds(_request, WEIRD_STRINGS | VALUES).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
    st.builds(lambda name, labels: yaml.safe_dump({**_request(name), "metadata": {"name": name, "labels": labels}}).encode(),
              st.sampled_from(["my-app", "b"]), VALUES),
    st.integers(1, 100_000).map(_deep_flow),
    st.integers(1, 3_000).map(_deep_block),
    st.just(BILLION_LAUGHS),
    st.just(b"metadata: {name: a}\n---\nmetadata: {name: b}\n"),
    st.just(b"\xef\xbb\xbfmetadata: {name: bom}\n"),
    st.just(b"metadata: {name: a, name: b}\n"),
)


def test_the_request_step_runs_on_a_plain_request(pipeline):
    pipeline.step("fuzz", REQUEST_STEP)
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@fuzz_settings(examples=EXAMPLES)
@given(document=REQUESTS)
def test_run_never_crashes_on_a_bad_request(pipeline, document, ledger):
    ledger["examples"] += 1
    pipeline.step("fuzz", REQUEST_STEP)
    (pipeline.input / "object.yaml").write_bytes(document)
    result = pipeline.run("run", timeout=60, check_traceback=False)
    no_traceback(result.stdout + result.stderr)
    assert result.returncode in DOCUMENTED, result.stderr
    event(f"run exit {result.returncode}")
    assert not (pipeline.work / "pwned").exists()


# -- secrets --------------------------------------------------------------------------------------

SECRET_STEP = """
    inputs:
      echo: { query: .spec.echo, default: none }
    secrets:
      TOKEN: { env: FUZZ_TOKEN }
    workdir: ../work
    run:
      - [PY, PRINTER]
    status:
      token: "${{ inputs.echo }}"
"""


def secret_step(pipeline) -> None:
    printer = pipeline.root / "printer.py"
    printer.write_text(PRINTER)
    pipeline.step("leak", SECRET_STEP.replace("PY", json.dumps(sys.executable))
                  .replace("PRINTER", json.dumps(str(printer))))


def status_text(pipeline) -> str:
    path = pipeline.metadata / "status.yaml"
    return path.read_text() if path.exists() else ""


PRINTER = r'''
import base64, os, sys, time
from urllib.parse import quote, quote_plus
s = os.environ["FUZZ_TOKEN"]
b = s.encode("utf-8", "surrogateescape")
half = len(s) // 2
for out in (sys.stdout, sys.stderr):
    out.write("raw:" + s + "\n")
    out.write("split:" + s[:half]); out.flush(); time.sleep(0.02)
    out.write(s[half:] + ":end\n"); out.flush()
    out.write("b64:" + base64.b64encode(b).decode() + " " + base64.b64encode(b + b"\n").decode() + "\n")
    out.write("url:" + quote(s, safe="") + " " + quote_plus(s) + "\n")
    out.write("nonl:" + s)
    out.flush()
    out.write("\n")
'''


def secret_forms(secret: str) -> set[str]:
    forms = set()
    for value in {secret, secret.strip()}:
        raw = value.encode()
        forms |= {value, base64.b64encode(raw).decode(), base64.b64encode(raw + b"\n").decode(),
                  base64.b64encode(raw).decode().rstrip("="), quote(value, safe=""),
                  quote_plus(value)}
        forms |= {line.strip() for line in value.split("\n")}
    return {f for f in forms if len(f.strip()) >= 4}


SECRETS = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1, max_size=60,
).filter(lambda s: s.strip() != "")


@pytest.mark.slow
@fuzz_settings(examples=max(1, EXAMPLES * 2 // 3))
@given(secret=SECRETS)
def test_a_random_secret_never_appears_in_the_output(pipeline, secret, ledger):
    ledger["examples"] += 1
    secret_step(pipeline)
    # A request that echoes the secret into a status value and the runner's own messages.
    pipeline.request({**_request("my-app"), "spec": {"echo": secret}})
    result = pipeline.run("run", env={"FUZZ_TOKEN": secret}, check_traceback=False)
    text = result.stdout + result.stderr + status_text(pipeline)
    no_traceback(text)
    assert result.returncode == 0, result.stderr
    if len(secret.strip()) < 4:
        assert "shorter than 4 characters" in result.stderr
        return
    # Forms the runner prints anyway (its own words, paths) cannot tell a leak.
    baseline = _baseline(pipeline)
    leaked = [f for f in secret_forms(secret) if f in text and f not in baseline]
    ledger["leaked"] += len(leaked)
    assert not leaked, (secret, leaked, text[-3000:])


_BASELINES: dict[str, str] = {}


def _baseline(pipeline) -> str:
    key = str(pipeline.root)
    if key not in _BASELINES:
        pipeline.request({**_request("my-app"), "spec": {"echo": "placeholder"}})
        result = pipeline.run("run", env={"FUZZ_TOKEN": "placeholder"})
        _BASELINES[key] = result.stdout + result.stderr + status_text(pipeline)
    return _BASELINES[key]
