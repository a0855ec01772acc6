"""Secrets in output that arrives in awkward pieces: split across two writes with a pause, one
character per write, across the 64 KiB a newline-free stream may hold back, a multi-line
secret arriving line by line, its base64 split; in text and JSON logs, on stdout and stderr.
Short secrets (1-3 characters) warn instead of masking the whole log. And a secret quoted by
the runner's own error messages."""

from __future__ import annotations

import base64
import json
import sys

import pytest

from runner.platform.masking import MAX_PENDING

SECRET = "hunter2-Sup3r/S3cret+value"
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0Zb2ZdF8uVh7Qy1mPx+w\n-----END KEY-----"

WRITER = r'''
import base64, os, sys, time
s = os.environ["TOKEN"]
how = os.environ["HOW"]
out = sys.stderr if os.environ.get("TO") == "stderr" else sys.stdout
def w(text, pause=0.0):
    out.write(text); out.flush()
    if pause: time.sleep(pause)
if how == "halves":
    w("before " + s[:7], 0.3); w(s[7:] + " after\n")
elif how == "chars":
    w("chars ")
    for ch in s:
        w(ch, 0.005)
    w(" done\n")
elif how == "long-line":  # no newline: the secret straddles the 64 KiB a masker holds back
    pad = int(os.environ["PAD"])
    w("x" * (pad - 5)); time.sleep(0.2)
    w(s[:10], 0.2); w(s[10:] + "y" * 1000, 0.2); w("z" * 70000)
elif how == "lines":
    for line in s.split("\n"):
        w(line + "\n", 0.1)
elif how == "b64":
    b = base64.b64encode(s.encode()).decode()
    w("b64 " + b[:5], 0.2); w(b[5:] + "\n")
elif how == "end":  # the secret is the last thing printed, with no newline
    w("tail " + s[:4], 0.2); w(s[4:])
'''


def step(pipeline) -> None:
    writer = pipeline.root / "writer.py"
    writer.write_text(WRITER)
    pipeline.step("s", f"""
        secrets:
          TOKEN: {{ env: TOKEN }}
        workdir: ../work
        run:
          - [{json.dumps(sys.executable)}, {json.dumps(str(writer))}]
    """)


def leaks(text: str, secret: str) -> list[str]:
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    forms |= {line for line in secret.split("\n") if len(line.strip()) >= 4}
    # pieces long enough to give it away
    forms |= {secret[i : i + 12] for i in range(0, max(1, len(secret) - 11))}
    return sorted(f for f in forms if f in text)


SECRETS = {"halves": SECRET, "chars": SECRET, "lines": PEM, "b64": SECRET, "end": SECRET,
           "long-line": SECRET}
CASES = [(how, to, fmt) for how in SECRETS for to in ("stdout", "stderr") for fmt in ("text", "json")
         if fmt == "text" or to == "stdout" or how in ("halves", "long-line")]


@pytest.mark.parametrize(("how", "to", "log_format"), CASES, ids=["-".join(c) for c in CASES])
def test_a_secret_split_across_output_chunks_is_masked(pipeline, how, to, log_format, ledger):
    secret = SECRETS[how]
    step(pipeline)
    env = {"TOKEN": secret, "HOW": how, "TO": to, "PAD": str(MAX_PENDING)}
    result = pipeline.run("run", "--log-format", log_format, env=env)
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    found = leaks(text, secret)
    ledger["leaked"] += len(found)
    assert not found, text[-2000:] if how != "long-line" else found
    assert "***" in text
    if how == "long-line":  # nothing was lost on the way
        assert text.count("x") >= MAX_PENDING - 5 and text.count("z") >= 70000


@pytest.mark.parametrize("secret", ["a", "ab", "abc", " ab ", "é", "\t1\n"])
def test_a_short_secret_warns_instead_of_masking_everything(pipeline, secret):
    step(pipeline)
    result = pipeline.run("run", env={"TOKEN": secret, "HOW": "halves"})
    assert result.returncode == 0, result.stderr
    assert "secret TOKEN is shorter than 4 characters and is not masked" in result.stderr
    assert "***" not in result.stdout + result.stderr
    assert "step s started" in result.stderr and "before " in result.stdout


def test_a_secret_quoted_by_an_input_error_is_masked(pipeline):
    pipeline.step("s", """
        inputs:
          tier: { query: .spec.tier, enum: [small, large] }
        secrets:
          TOKEN: { env: TOKEN }
        workdir: ../work
        run: [[echo, "${{ inputs.tier }}"]]
    """)
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "my-app"},
                      "spec": {"tier": SECRET}})
    result = pipeline.run("run", env={"TOKEN": SECRET})
    assert result.returncode == 2, result.stderr
    assert "is not one of" in result.stderr
    assert SECRET not in result.stderr + result.stdout, result.stderr
