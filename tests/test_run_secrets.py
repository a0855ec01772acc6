"""`runner run` and secrets: a missing one stops everything, and no form of one is ever printed."""



from __future__ import annotations

import base64
import json
import string
import sys
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PY = json.dumps(sys.executable)  # the venv's python, quoted for a YAML flow sequence


def forms(secret: str) -> set[str]:
    """The printed shapes of a secret a reader could turn back into it."""
    raw = secret.encode()
    return {
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw + b"\n").decode(),
        base64.b64encode(raw).decode().rstrip("="),
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }


def assert_nowhere(text: str, secret: str) -> None:
    for form in forms(secret):
        assert form not in text, f"{form!r} leaked:\n{text}"


def json_lines(stderr: str) -> list[dict]:
    records = []
    for line in stderr.splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        records.append(record)
    return records


# -- missing secrets: exit 2, nothing run -------------------------------------------------------


def test_missing_required_env_secret_exits_2_naming_it_and_runs_nothing(pipeline):
    # An earlier step with no secrets must not run either: every step is prepared first.
    pipeline.step(
        "a-first",
        """
        workdir: ../work
        run:
          - [touch, first-ran]
    """,
    )
    pipeline.step(
        "b-second",
        """
        secrets:
          TOKEN: { env: MY_TOKEN }
        workdir: ../work
        run:
          - [touch, second-ran]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 2, r.stderr
    assert "MY_TOKEN" in r.stderr and "TOKEN" in r.stderr
    assert "b-second.yaml" in r.stderr
    assert not (pipeline.work / "first-ran").exists()
    assert not (pipeline.work / "second-ran").exists()


def test_missing_required_file_secret_exits_2_naming_it_and_runs_nothing(pipeline):
    missing = pipeline.root / "mounted" / "ca.crt"
    pipeline.step(
        "uses-file",
        f"""
        secrets:
          CA_BUNDLE: {{ file: {missing} }}
        workdir: ../work
        run:
          - [touch, ran]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 2, r.stderr
    assert "CA_BUNDLE" in r.stderr and str(missing) in r.stderr
    assert not (pipeline.work / "ran").exists()


def test_missing_secret_error_is_json_with_json_log_format(pipeline):
    pipeline.step(
        "needs-token",
        """
        secrets:
          TOKEN: { env: MY_TOKEN }
        workdir: ../work
        run:
          - [touch, ran]
    """,
    )
    r = pipeline.run("run", "--log-format", "json")
    assert r.returncode == 2
    records = json_lines(r.stderr)
    assert any("MY_TOKEN" in rec["msg"] and rec["level"] == "error" for rec in records)


def test_optional_missing_secrets_are_fine_and_absent_from_the_environment(pipeline):
    pipeline.step(
        "optional",
        f"""
        secrets:
          TOKEN: {{ env: MY_TOKEN, required: false }}
          CA_BUNDLE: {{ file: {pipeline.root / "nowhere.crt"}, required: false }}
        workdir: ../work
        run:
          - script: |
              echo "token=${{TOKEN-unset}} ca=${{CA_BUNDLE-unset}}" > seen.txt
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "seen.txt").read_text() == "token=unset ca=unset\n"


def test_present_secrets_reach_commands_only_as_environment(pipeline):
    secret_file = pipeline.root / "ca.crt"
    secret_file.write_text("file-secret-value\n")
    pipeline.step(
        "both",
        f"""
        secrets:
          TOKEN: {{ env: MY_TOKEN }}
          CA_BUNDLE: {{ file: {secret_file} }}
        workdir: ../work
        run:
          - [{PY}, -c, "import os; open('seen.txt', 'w').write(os.environ['TOKEN'] + '|' + os.environ['CA_BUNDLE'])"]
    """,
    )
    r = pipeline.run("run", env={"MY_TOKEN": "env-secret-value"})
    assert r.returncode == 0, r.stderr
    # The file's trailing newline is not part of the value.
    assert (pipeline.work / "seen.txt").read_text() == "env-secret-value|file-secret-value"


# -- empty secrets --------------------------------------------------------------------------------

EMPTY_STEP = """
    secrets:
      TOKEN: {{ env: MY_TOKEN{extra} }}
      CA_BUNDLE: {{ file: {file}{extra} }}
    workdir: ../work
    run:
      - script: |
          echo "token=${{TOKEN-unset}} ca=${{CA_BUNDLE-unset}}" > seen.txt
"""


def empty_secrets(pipeline, extra: str = "") -> None:
    """TOKEN from an empty variable and CA_BUNDLE from a file with only a newline."""
    ca = pipeline.root / "ca.crt"
    ca.write_text("\n")
    pipeline.step("empty", EMPTY_STEP.format(file=ca, extra=extra))


def test_an_empty_required_secret_exits_2_naming_it_and_runs_nothing(pipeline):
    pipeline.step("a-first", """
        workdir: ../work
        run:
          - [touch, first-ran]
    """)  # fmt: skip
    empty_secrets(pipeline)
    r = pipeline.run("run", env={"MY_TOKEN": ""})
    assert r.returncode == 2, r.stderr
    assert "spec.secrets.TOKEN: secret TOKEN: environment variable MY_TOKEN is empty" in r.stderr
    ca = pipeline.root / "ca.crt"
    assert f"spec.secrets.CA_BUNDLE: secret CA_BUNDLE: file {ca} is empty" in r.stderr
    assert 'add "allowEmpty: true" to the secret' in r.stderr
    assert not (pipeline.work / "first-ran").exists()
    assert not (pipeline.work / "seen.txt").exists()


def test_allow_empty_passes_an_empty_secret_on(pipeline):
    empty_secrets(pipeline, ", allowEmpty: true")
    r = pipeline.run("run", env={"MY_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "seen.txt").read_text() == "token= ca=\n"


def test_an_empty_optional_secret_is_treated_as_absent(pipeline):
    empty_secrets(pipeline, ", required: false")
    r = pipeline.run("run", env={"MY_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "seen.txt").read_text() == "token=unset ca=unset\n"


def test_allow_empty_must_be_a_boolean_and_validates(tmp_path):
    from tests.test_validate import invalid, step, validate, where

    good = step(spec="secrets:\n  T: {env: T, allowEmpty: true}\nrun: [[x]]\n")
    (tmp_path / "good.yaml").write_text(good)
    assert validate(tmp_path, "good.yaml").code == 0
    bad = step(spec='secrets:\n  T: {env: T, allowEmpty: "yes"}\nrun: [[x]]\n')
    result = invalid(tmp_path, bad)
    at = where(bad, '"yes"')
    assert any(
        line.startswith(f"a.yaml:{at}: spec.secrets.T.allowEmpty: ") for line in result.lines
    ), result.err


# -- masking ------------------------------------------------------------------------------------

SECRET = (
    "p@ss w/rd+s3cr3t!"  # URL-encodes three different ways; short enough that base64 is one line
)

PRINT_EVERY_FORM = f"""
    secrets:
      S: {{ env: THE_SECRET }}
    workdir: ../work
    run:
      - script: |
          echo "$S"
          echo "$S" >&2
          echo "before $S after"
          printf %s "$S" | base64
          echo "$S" | base64
          printf %s "$S" | base64 >&2
          {PY} -c 'import os, urllib.parse as u; s = os.environ["S"]; print(u.quote(s, safe="")); print(u.quote(s)); print(u.quote_plus(s))'
"""


def test_secret_and_its_base64_and_url_encoded_forms_are_masked_in_text_logs(pipeline):
    pipeline.step("leaky", PRINT_EVERY_FORM)
    r = pipeline.run("run", env={"THE_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    assert_nowhere(r.stdout + r.stderr, SECRET)
    assert r.stdout.splitlines() == ["***", "before *** after", "***", "***", "***", "***", "***"]
    assert r.stderr.count("***\n") >= 2  # the stderr echo and the stderr base64


def test_secret_forms_are_masked_in_json_logs(pipeline):
    pipeline.step("leaky", PRINT_EVERY_FORM)
    r = pipeline.run("run", "--log-format", "json", env={"THE_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert_nowhere(r.stderr, SECRET)
    records = json_lines(r.stderr)
    output = [rec for rec in records if rec.get("stream")]
    assert [rec["msg"] for rec in output if rec["stream"] == "stdout"] == [
        "***",
        "before *** after",
        "***",
        "***",
        "***",
        "***",
        "***",
    ]
    assert [rec["msg"] for rec in output if rec["stream"] == "stderr"] == ["***", "***"]
    # JSON escaping must not be a way around the masker either.
    assert_nowhere(json.dumps(records, ensure_ascii=False), SECRET)


def test_each_line_of_a_multi_line_secret_is_masked(pipeline):
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nhkiG9w0BAQEFAASC\n-----END KEY-----\n"
    key_file = pipeline.root / "tls.key"
    key_file.write_text(key)
    pipeline.step(
        "multi",
        f"""
        secrets:
          KEY: {{ file: {key_file} }}
        workdir: ../work
        run:
          - script: |
              printf '%s\\n' "$KEY"
              echo "$KEY" | sed -n 2p >&2
              echo "line three is $(echo "$KEY" | sed -n 3p)."
    """,
    )
    for fmt in ("text", "json"):
        r = pipeline.run("run", "--log-format", fmt)
        assert r.returncode == 0, r.stderr
        for line in key.splitlines():
            assert line not in r.stdout + r.stderr
        assert_nowhere(r.stdout + r.stderr, key.rstrip("\n"))
    r = pipeline.run("run")
    # The whole value is one match, however many lines it spans.
    assert r.stdout == "***\nline three is ***.\n"
    assert "***\n" in r.stderr


def test_secrets_are_masked_in_status_values(pipeline):
    pipeline.step(
        "status",
        f"""
        secrets:
          S: {{ env: THE_SECRET }}
        workdir: ../work
        run:
          - [{PY}, -c, "import json, os; s = os.environ['S']; json.dump({{'v': s, 'nested': {{'url': 'https://h/?t=' + s, 'list': [s]}}}}, open('out.json', 'w'))"]
        status:
          x: {{ file: out.json, query: .v }}
          nested: {{ file: out.json, query: .nested }}
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    text = (pipeline.metadata / "status.yaml").read_text()
    assert_nowhere(text, SECRET)
    assert pipeline.status()["x"] == "***"
    assert pipeline.status()["nested"] == {"url": "https://h/?t=***", "list": ["***"]}
    assert_nowhere(r.stdout + r.stderr, SECRET)


def test_a_numeric_secret_is_masked_in_status_values(pipeline):
    pipeline.step(
        "status",
        f"""
        secrets:
          PIN: {{ env: THE_PIN }}
        workdir: ../work
        run:
          - [{PY}, -c, "import json, os; json.dump({{'v': int(os.environ['PIN'])}}, open('out.json', 'w'))"]
        status:
          x: {{ file: out.json, query: .v }}
    """,
    )
    r = pipeline.run("run", env={"THE_PIN": "73519864"})
    assert r.returncode == 0, r.stderr
    assert "73519864" not in (pipeline.metadata / "status.yaml").read_text()


# -- chunked output -----------------------------------------------------------------------------


def test_secret_printed_without_a_trailing_newline_is_masked(pipeline):
    pipeline.step(
        "no-newline",
        """
        secrets:
          S: { env: THE_SECRET }
        workdir: ../work
        run:
          - script: printf 'value=%s' "$S"
          - script: printf '%s' "$S" >&2
    """,
    )
    for fmt in ("text", "json"):
        r = pipeline.run("run", "--log-format", fmt, env={"THE_SECRET": SECRET})
        assert r.returncode == 0, r.stderr
        assert_nowhere(r.stdout + r.stderr, SECRET)
        assert "value=***" in r.stdout + r.stderr


def test_secret_printed_in_two_halves_with_a_pause_is_masked(pipeline):
    pipeline.step(
        "halves",
        """
        secrets:
          S: { env: THE_SECRET }
        workdir: ../work
        run:
          - script: |
              printf 'ab'; sleep 0.2; printf 'cdef\\n'
              printf 'token: ab' >&2; sleep 0.2; printf 'cd' >&2; sleep 0.1; printf 'ef and more\\n' >&2
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": "abcdef"})
    assert r.returncode == 0, r.stderr
    assert "abcdef" not in r.stdout + r.stderr
    assert "ab" not in r.stdout  # not even the first half, flushed on its own
    assert r.stdout == "***\n"
    assert "token: *** and more\n" in r.stderr


# -- short secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["Q", "QZ", "Q9Z"])
def test_a_too_short_secret_warns_without_showing_it_and_does_not_shred_the_log(pipeline, value):
    pipeline.step(
        "short",
        """
        secrets:
          PIN: { env: THE_PIN }
        workdir: ../work
        run:
          - [echo, "Quiz: Zebra Q9Z quietly zoomed"]
    """,
    )
    r = pipeline.run("run", env={"THE_PIN": value})
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, r.stderr
    assert "PIN" in warnings[0] and "not masked" in warnings[0]
    assert value not in warnings[0]
    assert "***" not in r.stdout + r.stderr
    assert r.stdout == "Quiz: Zebra Q9Z quietly zoomed\n"
    assert "step short finished" in r.stderr


# -- properties ---------------------------------------------------------------------------------

secret_values = (
    st.text(
        alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")),
        min_size=4,
        max_size=48,
    )
    .filter(lambda s: len(s.strip()) >= 4)
    .filter(lambda s: "*" not in s)  # a secret of asterisks would "appear" in the masks
)


@pytest.mark.slow
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(secret=secret_values)
def test_random_secrets_echoed_by_a_script_never_appear(pipeline, secret):
    pipeline.step(
        "echo-random",
        """
        secrets:
          S: { env: THE_SECRET }
        workdir: ../work
        run:
          - script: |
              printf '%s\\n' "$S"
              printf 'x%sy\\n' "$S" >&2
              printf 'first %s then %s\\n' "$S" "$S"
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": secret})
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    assert secret.strip() not in r.stdout + r.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_binary_output_does_not_crash_the_runner(pipeline, fmt):
    pipeline.step(
        "binary",
        f"""
        secrets:
          S: {{ env: THE_SECRET }}
        workdir: ../work
        run:
          - [{PY}, -c, "import sys; sys.stdout.buffer.write(bytes(range(256)) * 64 + b'\\\\xff\\\\xfe tail')"]
          - script: printf '\\xff\\xc3%s\\xc3\\n' "$S" >&2; head -c 20000 /dev/urandom
          - [echo, still running]
    """,
    )
    r = pipeline.run("run", "--log-format", fmt, env={"THE_SECRET": "bin-secret-value"})
    assert r.returncode == 0, r.stderr
    assert "bin-secret-value" not in r.stdout + r.stderr
    assert "still running" in r.stdout + r.stderr
    if fmt == "json":
        json_lines(r.stderr)


def test_a_secret_with_undecodable_bytes_is_masked(pipeline):
    import os

    raw = b"key-\xff\xfe-tail-part"
    pipeline.step(
        "raw",
        """
        secrets:
          S: { env: THE_SECRET }
        workdir: ../work
        run:
          - script: printf 'got %s\\n' "$S"
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": os.fsdecode(raw)})
    assert r.returncode == 0, r.stderr
    assert "key-" not in r.stdout and "tail-part" not in r.stdout, r.stdout
    assert r.stdout == "got ***\n"


def test_long_secret_base64_wrapped_by_the_base64_tool_is_masked(pipeline):
    # `base64` wraps at 76 columns: a long token (a JWT, a key) is printed over several lines.
    secret = "".join(string.ascii_letters[(i * 7) % 52] for i in range(120))
    pipeline.step(
        "wrapped",
        """
        secrets:
          S: { env: THE_SECRET }
        workdir: ../work
        run:
          - script: printf %s "$S" | base64
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": secret})
    assert r.returncode == 0, r.stderr
    for line in base64.encodebytes(secret.encode()).decode().splitlines():
        assert line not in r.stdout, f"wrapped base64 line leaked: {line}"


def test_a_secret_with_mask_false_is_required_but_shown(pipeline):
    pipeline.step("endpoint", """
        secrets:
          ENDPOINT: { env: MINIO_ENDPOINT, mask: false }
          PASSWORD: { env: MINIO_PASSWORD }
        workdir: ../work
        run:
          - [sh, -c, 'echo "to $ENDPOINT as $PASSWORD"']
    """)
    result = pipeline.run("run", env={"MINIO_ENDPOINT": "minio.example:9000", "MINIO_PASSWORD": "hunter2-pw"})
    assert result.returncode == 0, result.stderr
    assert "to minio.example:9000 as ***" in result.stdout
    missing = pipeline.run("run", env={"MINIO_PASSWORD": "hunter2-pw"})
    assert missing.returncode == 2 and "MINIO_ENDPOINT is not set" in missing.stderr
