"""`runner run` and its commands: argv not shell, streamed output, timeouts, failures, logs."""



from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

PY = json.dumps(sys.executable)  # the venv's python, quoted for a YAML flow sequence

DUMP_ARGV = "import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], 'w'))"
DUMP_INPUT_ENV = (
    "import json, os; json.dump({k: v for k, v in os.environ.items() if k.startswith('INPUT_')}, "
    "open('env.json', 'w'))"
)


def alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- inputs are data, never shell ---------------------------------------------------------------

NASTY = {
    "semicolon": "x; rm -rf / ; touch pwned",
    "subst": "$(touch pwned)",
    "backticks": "`touch pwned`",
    "quotes": "it's \"quoted\" \\ and 'single'",
    "newlines": "line one\nline two; touch pwned\n",
    "glob": "* ?.yaml [a-z]",
    "template": "${{ kratix.action }}",
    "env-ref": "${HOME} $PATH",
}


def nasty_pipeline(pipeline) -> None:
    pipeline.request(
        {
            "apiVersion": "workshop.kratix.io/v1",
            "kind": "App",
            "metadata": {"name": "my-app", "namespace": "default"},
            "spec": dict(NASTY),
        }
    )
    inputs = "".join(f"  {name}: {{ query: '.spec.\"{name}\"' }}\n" for name in NASTY)
    argv = ", ".join(f'"${{{{ inputs.{name} }}}}"' for name in NASTY)
    pipeline.step(
        "nasty",
        (
            f"inputs:\n{inputs}"
            "workdir: ../work\n"
            "run:\n"
            f'  - [{PY}, -c, "{DUMP_ARGV}", argv.json, {argv}, "pre-${{{{ inputs.semicolon }}}}-post"]\n'
            "  - script: |\n"
            f'      {PY} -c "{DUMP_INPUT_ENV}"\n'
            '      echo "$INPUT_SUBST" "$INPUT_BACKTICKS" > echoed.txt\n'
        ),
    )


def test_request_values_reach_commands_as_literal_argv_items_and_nothing_runs(pipeline):
    nasty_pipeline(pipeline)
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    argv = json.loads((pipeline.work / "argv.json").read_text())
    assert argv == ["argv.json", *NASTY.values(), f"pre-{NASTY['semicolon']}-post"]
    assert not list(pipeline.root.rglob("pwned"))
    assert not (Path.cwd() / "pwned").exists()


def test_request_values_reach_scripts_as_input_environment_and_nothing_runs(pipeline):
    nasty_pipeline(pipeline)
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    env = json.loads((pipeline.work / "env.json").read_text())
    expected = {f"INPUT_{name.upper().replace('-', '_')}": value for name, value in NASTY.items()}
    assert env == expected
    assert (pipeline.work / "echoed.txt").read_text() == "$(touch pwned) `touch pwned`\n"
    assert not list(pipeline.root.rglob("pwned"))


# -- streaming ----------------------------------------------------------------------------------


def test_output_is_streamed_while_the_command_runs(pipeline):
    pipeline.step(
        "slow",
        """
        workdir: ../work
        run:
          - script: |
              echo first
              sleep 2
              echo second
    """,
    )
    process = pipeline.popen("run")
    try:
        first = process.stdout.readline()
        first_at = time.monotonic()
        rest, err = process.communicate(timeout=30)
        ended_at = time.monotonic()
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert first == "first\n"
    assert rest == "second\n"
    assert ended_at - first_at >= 1.0, "the first line came only when the command ended"


# -- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["command", "step"])
def test_a_timeout_kills_the_whole_process_group(pipeline, where, leftovers):
    command = '[bash, -c, "sleep 60 & echo $! > child.pid; echo $$ > parent.pid; wait"]'
    if where == "command":
        body = f"run:\n  - {{ argv: {command}, timeout: 1s }}\n  - [touch, after]"
    else:
        body = f"timeout: 1s\nrun:\n  - {command}\n  - [touch, after]"
    pipeline.step("hangs", "workdir: ../work\n" + body)
    r = pipeline.run("run", "--log-format", "json", env={"RUNNER_KILL_GRACE": "5"})
    [took] = [
        json.loads(line)["duration"] for line in r.stderr.splitlines() if "command-end" in line
    ]
    child = int((pipeline.work / "child.pid").read_text())
    parent = int((pipeline.work / "parent.pid").read_text())
    leftovers += [child, parent]
    assert r.returncode == 1, r.stderr
    assert "timed out" in r.stderr
    assert wait_gone(parent)
    assert wait_gone(child), "the grandchild outlived the timeout"
    assert not (pipeline.work / "after").exists()
    # The command's own duration (not the runner's start-up): SIGTERM ended it at the timeout,
    # without waiting for the 5 s grace.
    assert took < 4, f"took {took:.1f}s for a 1s timeout"


def test_a_timeout_also_kills_what_ignores_sigterm_after_the_grace(pipeline, leftovers):
    pipeline.step(
        "stubborn",
        """
        workdir: ../work
        run:
          - { argv: [bash, -c, "trap '' TERM; sleep 60 & echo $! > child.pid; wait; wait"], timeout: 0.5s }
    """,
    )
    started = time.monotonic()
    r = pipeline.run("run", env={"RUNNER_KILL_GRACE": "1"})
    took = time.monotonic() - started
    child = int((pipeline.work / "child.pid").read_text())
    leftovers.append(child)
    assert r.returncode == 1, r.stderr
    assert "timed out" in r.stderr
    assert wait_gone(child)
    assert 1.4 < took < 5, took


# -- failures -----------------------------------------------------------------------------------


def test_a_failing_command_exits_1_reports_its_code_and_stops_the_step(pipeline):
    pipeline.step(
        "fails",
        """
        workdir: ../work
        run:
          - [touch, before]
          - [sh, -c, "exit 3"]
          - [touch, after]
    """,
    )
    pipeline.step(
        "later",
        """
        workdir: ../work
        run:
          - [touch, later-step]
    """,
        file="z-later.yaml",
    )
    r = pipeline.run("run")
    assert r.returncode == 1, r.stderr
    assert "exited with 3" in r.stderr
    assert (pipeline.work / "before").exists()
    assert not (pipeline.work / "after").exists()
    assert not (pipeline.work / "later-step").exists()


def test_continue_on_error_goes_on_to_the_next_command(pipeline):
    pipeline.step(
        "tolerant",
        """
        workdir: ../work
        run:
          - { argv: [sh, -c, "exit 4"], continueOnError: true }
          - [touch, after]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert "exited with 4" in r.stderr
    assert "continuing" in r.stderr
    assert (pipeline.work / "after").exists()


def test_a_command_not_found_exits_1_and_says_so(pipeline):
    pipeline.step(
        "typo",
        """
        workdir: ../work
        run:
          - [terrafrom-not-installed, init]
          - [touch, after]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 1, r.stderr
    assert "command not found: terrafrom-not-installed" in r.stderr
    assert not (pipeline.work / "after").exists()


def test_a_command_killed_by_a_signal_is_reported(pipeline):
    pipeline.step(
        "dies",
        """
        workdir: ../work
        run:
          - [sh, -c, "kill -KILL $$"]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 1, r.stderr
    assert "killed by SIGKILL" in r.stderr


def test_commands_read_an_empty_stdin(pipeline):
    pipeline.step(
        "reads",
        """
        workdir: ../work
        run:
          - { argv: [cat], stdout: stdin.txt }
    """,
    )
    r = pipeline.run("run", timeout=20)
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "stdin.txt").read_bytes() == b""


# -- scripts ------------------------------------------------------------------------------------


def test_scripts_get_inputs_as_environment(pipeline):
    pipeline.step(
        "script",
        """
        inputs:
          name: { query: .metadata.name }
          image-tag: { query: .spec.image }
          tier: { query: .spec.tier }
        workdir: ../work
        run:
          - script: |
              echo "$INPUT_NAME $INPUT_IMAGE_TAG $INPUT_TIER" > seen.txt
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "seen.txt").read_text() == "my-app nginx small\n"


@pytest.mark.parametrize(
    "line",
    [
        'echo "$NOT_SET_ANYWHERE"',  # -u
        "false",  # -e
        "false | true",  # -o pipefail
    ],
)
def test_scripts_run_with_bash_strict_mode(pipeline, line):
    pipeline.step(
        "strict",
        f"""
        workdir: ../work
        run:
          - script: |
              touch before
              {line}
              touch after
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 1, r.stderr
    assert (pipeline.work / "before").exists()
    assert not (pipeline.work / "after").exists()


# -- stdout capture and status ------------------------------------------------------------------


def test_stdout_capture_gets_the_real_output_and_feeds_status(pipeline):
    pipeline.step(
        "capture",
        f"""
        secrets:
          S: {{ env: THE_SECRET }}
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "import json, os; print(json.dumps({{'a': {{'b': 'deep', 'n': 3}}, 's': os.environ['S']}}))"], stdout: out.json }}
        status:
          k: {{ file: out.json, query: .a.b }}
          n: {{ file: out.json, query: .a.n }}
    """,
    )
    r = pipeline.run("run", env={"THE_SECRET": "capture-secret"})
    assert r.returncode == 0, r.stderr
    captured = json.loads((pipeline.work / "out.json").read_text())
    assert captured == {"a": {"b": "deep", "n": 3}, "s": "capture-secret"}  # unmasked in the file
    assert '"s": "***"' in r.stdout  # masked in the log
    assert pipeline.status()["k"] == "deep"
    assert pipeline.status()["n"] == 3


def test_stdout_capture_is_byte_exact(pipeline):
    pipeline.step(
        "bytes",
        f"""
        workdir: ../work
        run:
          - {{ argv: [{PY}, -c, "import sys; sys.stdout.buffer.write(bytes(range(256)) * 300 + b'no newline')"], stdout: sub/out.bin }}
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert (pipeline.work / "sub" / "out.bin").read_bytes() == bytes(
        range(256)
    ) * 300 + b"no newline"


# -- log lines ----------------------------------------------------------------------------------

TWO_COMMANDS = """
    workdir: ../work
    run:
      - [echo, hello]
      - [sh, -c, "echo oops >&2"]
"""


def test_text_log_shows_each_step_and_command_start_and_finish_with_durations(pipeline):
    pipeline.step("logs", TWO_COMMANDS)
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    lines = r.stderr.splitlines()
    duration = r"\(\d+(\.\d+)?s\)"
    expected = [
        r"step logs started$",
        r"▶ echo hello$",
        rf"✔ echo hello {duration}$",
        r"▶ sh -c 'echo oops >&2'$",
        r"^oops$",
        rf"✔ sh -c 'echo oops >&2' {duration}$",
        r"step logs finished in \d+(\.\d+)?s$",
    ]
    position = 0
    for pattern in expected:
        while position < len(lines) and not re.search(pattern, lines[position]):
            position += 1
        assert position < len(lines), f"{pattern!r} missing or out of order in:\n{r.stderr}"


def test_json_log_is_one_object_per_line_with_command_events_and_durations(pipeline):
    pipeline.step("logs", TWO_COMMANDS)
    pipeline.step(
        "broken",
        """
        workdir: ../work
        run:
          - [sh, -c, "exit 5"]
    """,
        file="z-broken.yaml",
    )
    r = pipeline.run("run", "--log-format", "json")
    assert r.returncode == 1
    assert r.stdout == ""
    records = [json.loads(line) for line in r.stderr.splitlines()]
    for record in records:
        assert {"time", "level", "msg"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    events = [(rec.get("event"), rec.get("step")) for rec in records if rec.get("event")]
    assert events[:6] == [
        ("step-start", "logs"),
        ("command-start", "logs"),
        ("command-end", "logs"),
        ("command-start", "logs"),
        ("command-end", "logs"),
        ("step-end", "logs"),
    ]
    ends = [rec for rec in records if rec.get("event") == "command-end"]
    assert all(isinstance(rec["duration"], float | int) for rec in ends)
    assert [rec["exit_code"] for rec in ends] == [0, 0, 5]
    assert ends[-1]["level"] == "error" and "exited with 5" in ends[-1]["msg"]
    output = [(rec["stream"], rec["msg"]) for rec in records if "stream" in rec]
    assert output == [("stdout", "hello"), ("stderr", "oops")]
    step_ends = [rec for rec in records if rec.get("event") == "step-end"]
    assert [rec["status"] for rec in step_ends] == ["succeeded", "failed"]
    assert isinstance(step_ends[0]["duration"], float | int)


def test_json_log_failed_step_end_has_a_duration(pipeline):
    pipeline.step(
        "broken",
        """
        workdir: ../work
        run:
          - [sh, -c, "exit 5"]
    """,
    )
    r = pipeline.run("run", "--log-format", "json")
    assert r.returncode == 1
    step_end = [json.loads(line) for line in r.stderr.splitlines() if '"step-end"' in line]
    assert "duration" in step_end[0]


def test_commands_take_no_needless_wall_time(pipeline):
    # Waiting for a command must not be a poll: ten quick commands take well under a second.
    pipeline.step("quick", "workdir: ../work\nrun:\n" + "  - [sh, -c, 'ls / > /dev/null']\n" * 10)
    r = pipeline.run("run", "--log-format", "json")
    assert r.returncode == 0, r.stderr
    durations = [
        json.loads(line)["duration"] for line in r.stderr.splitlines() if "command-end" in line
    ]
    assert len(durations) == 10
    # Each command's own duration, not the run's wall time (start-up is the benchmark's job,
    # bench/): a polling wait would show here whatever the machine's load.
    assert max(durations) < 0.5, durations


def test_a_command_allowed_to_fail_is_logged_as_a_warning_not_an_error(pipeline):
    pipeline.step(
        "look",
        "run:\n  - { argv: [sh, -c, 'exit 1'], continueOnError: true }\n  - [true]\n",
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert "warning: ✖ sh -c 'exit 1' exited with 1" in result.stderr
    assert " error:" not in result.stderr
