"""The injected Environment: what `from_process` takes, and how bytes reach stdout."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import TextIO

from runner.platform.environment import Environment

RAW = b"tfstate \xff\xfe not UTF-8\n"


def _env(stdout: TextIO) -> Environment:
    return Environment({}, io.StringIO(), stdout, io.StringIO(), Path.cwd())


def test_from_process_is_the_process_environment_and_streams():
    env = Environment.from_process()
    assert env.environ is os.environ
    assert (env.stdin, env.stdout, env.stderr) == (sys.stdin, sys.stdout, sys.stderr)
    assert env.cwd == env.cwd.resolve()


def test_bytes_go_through_the_binary_buffer_unchanged_and_after_earlier_text():
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    env = _env(stdout)
    env.stdout.write("before\n")
    env.write_bytes(RAW)
    assert raw.getvalue() == b"before\n" + RAW


def test_bytes_on_a_text_only_stream_keep_undecodable_bytes_as_surrogates():
    stdout = io.StringIO()
    _env(stdout).write_bytes(RAW)
    assert stdout.getvalue().encode("utf-8", "surrogateescape") == RAW
