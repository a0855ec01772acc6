"""`runner test` never shows a secret that a step wrote escaped or encoded: not in its diff, its
JUnit XML, its JSON report, nor in the files `--update` writes. Parsing JSON and YAML decodes
escapes (`\\u0026` back into `&`), so what it shows is masked after parsing."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.test_runner_test import make_case, runner_test, write_step

SECRET = "Tr0ub4dor&3<x>"
FORMS = [
    SECRET,
    "Tr0ub4dor\\u00263\\u003cx\\u003e",
    "Tr0ub4dor\\x263<x>",
    json.dumps(SECRET)[1:-1],
    "Tr0ub4dor",
]


def no_form_of_the_secret(text: str) -> None:
    for form in FORMS:
        assert form not in text
    # base64 over lines: joined and decoded at every alignment, between the masks
    joined = re.sub(r"[^A-Za-z0-9+/]+", "#", text.replace("***", "#"))
    for part in joined.split("#"):
        for align in range(4):
            chunk = part[align:]
            chunk = chunk[: len(chunk) // 4 * 4]
            assert SECRET.encode() not in base64.b64decode(chunk)


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """A case whose step writes its secret Go-JSON-escaped, YAML-escaped and base64-wrapped."""
    write_step(
        tmp_path / "steps.d",
        "leaky",
        r"""
        secrets:
          TOKEN: { env: MY_TOKEN }
        run:
          - script: |
              go=$(printf %s "$TOKEN" | sed 's/&/\\u0026/g; s/</\\u003c/g; s/>/\\u003e/g')
              yml=$(printf %s "$TOKEN" | sed 's/&/\\x26/g')
              mkdir -p "$KRATIX_OUTPUT_DIR" "$KRATIX_METADATA_DIR"
              printf '{"token":"%s","n":1}\n' "$go" > "$KRATIX_OUTPUT_DIR/leak.json"
              printf 'token: "%s"\nn: 1\n' "$yml" > "$KRATIX_OUTPUT_DIR/leak.yaml"
              printf 'message: "%s"\n' "$yml" > "$KRATIX_METADATA_DIR/status.yaml"
              printf 'prefix-%s-suffix' "$TOKEN" | base64 -w 20 > "$KRATIX_OUTPUT_DIR/blob.txt"
    """,
    )
    case = make_case(tmp_path / "tests" / "leak", env=f"MY_TOKEN='{SECRET}'\n")
    # Expected files that differ, so each is shown as a diff.
    (case / "output").mkdir()
    (case / "output" / "leak.json").write_text('{"token": "other", "n": 2}\n')
    (case / "output" / "leak.yaml").write_text("token: other\nn: 2\n")
    return case


@pytest.mark.slow
def test_runner_test_shows_no_form_of_an_escaped_secret(tmp_path: Path, leaky: Path) -> None:
    report = tmp_path / "report.xml"
    failed = runner_test(tmp_path, "-v", "--junit", str(report), str(leaky))
    printed = failed.stdout + failed.stderr
    assert failed.returncode == 1, printed
    assert "output/leak.json: differs" in printed and "***" in printed
    no_form_of_the_secret(printed)
    no_form_of_the_secret(report.read_text())

    as_json = runner_test(tmp_path, "--format", "json", str(leaky))
    assert as_json.returncode == 1
    no_form_of_the_secret(as_json.stdout + as_json.stderr)
    no_form_of_the_secret(json.dumps(json.loads(as_json.stdout), ensure_ascii=False))

    (leaky / "case.yaml").write_text("expect:\n  exitCode: 0\n")
    updated = runner_test(tmp_path, "--update", str(leaky))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    no_form_of_the_secret(updated.stdout + updated.stderr)
    written = {p.name: p.read_text() for p in (leaky / "output").iterdir()}
    written["status.yaml"] = (leaky / "metadata" / "status.yaml").read_text()
    assert set(written) == {"leak.json", "leak.yaml", "blob.txt", "status.yaml"}
    for name, text in written.items():
        no_form_of_the_secret(text)
        if name.endswith(".json"):
            no_form_of_the_secret(json.dumps(json.loads(text), ensure_ascii=False))
        elif name.endswith(".yaml"):
            no_form_of_the_secret(str(yaml.safe_load(text)))
