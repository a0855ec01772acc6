"""`runner test` runs each case's `runner run` in its own process, through the same `cli.main`
and Session: each case keeps its own environment, secrets, exit code and timeout, and the
calling process is left as it was. Driven in process (`cli.main`), like a user's `runner test`
but without an interpreter start per test."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest

from runner.platform import interrupts
from runner.platform.masking import Masker, session_masker, set_session_masker
from tests.conftest import base_env, runner_in_process
from tests.test_runner_test import make_case, write_step


def runner_test(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    (tmp_path / "tmp").mkdir(exist_ok=True)
    environ = {**base_env(tmp_path), **(env or {})}
    result = runner_in_process(["test", "--color", "never", "-v", *args], tmp_path, environ)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def test_a_runner_bug_in_one_case_is_exit_4_for_it_and_the_other_cases_still_run(
    tmp_path, monkeypatch
):
    from runner.engine import Engine

    original = Engine.run_step

    def run_step(self, prepared):  # a bug of the runner's, in one step only
        if prepared.step.name == "buggy":
            raise RuntimeError(f"boom near {self.environ['API_TOKEN']}")
        return original(self, prepared)

    monkeypatch.setattr(Engine, "run_step", run_step)
    write_step(tmp_path / "steps.d", "buggy", "run: [[bash, -c, 'echo never']]")
    write_step(tmp_path / "steps.d", "fine", "run: [[bash, -c, 'echo fine ran']]")
    bug = make_case(
        tmp_path / "tests" / "a-bug",
        env="API_TOKEN=token-of-the-buggy-case\n",
        case_yaml="steps: [buggy]\nexpect:\n  exitCode: 4\n  stderrContains:\n"
        "  - 'internal error: RuntimeError: boom near ***'\n  - this is a bug in runner\n",
    )
    fine = make_case(
        tmp_path / "tests" / "b-fine",
        case_yaml="steps: [fine]\nexpect: {stdoutContains: fine ran}\n",
    )
    result = runner_test(tmp_path, str(bug), str(fine))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 0 failed" in result.stdout
    assert "PASS tests/a-bug" in result.stdout and "exit 4 as expected" in result.stdout
    assert "token-of-the-buggy-case" not in result.stdout + result.stderr


def test_in_parallel_a_runner_bug_is_exit_4_for_its_case_and_results_stay_in_order(
    tmp_path, monkeypatch
):
    from runner.engine import Engine

    def run_step(self, prepared):
        raise RuntimeError("boom")

    monkeypatch.setattr(Engine, "run_step", run_step)  # the forked processes inherit it
    write_step(tmp_path / "steps.d", "step", "run: [[bash, -c, 'echo never']]")
    cases = [
        make_case(tmp_path / "tests" / name, case_yaml=f"expect: {{exitCode: {code}}}\n")
        for name, code in (("a", 4), ("b", 0), ("c", 4))
    ]
    result = runner_test(tmp_path, "-j", "2", *map(str, cases))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [line.split()[:2] for line in lines] == [
        ["PASS", "tests/a"], ["FAIL", "tests/b"], ["PASS", "tests/c"]
    ]  # fmt: skip
    assert "exit code 4, expected 0" in result.stdout
    assert "2 passed, 1 failed" in result.stdout


def test_a_case_sees_its_own_environment_and_tmpdir_and_never_the_one_before_it(tmp_path):
    write_step(
        tmp_path / "steps.d",
        "show",
        """
        workdir: work
        copyWorkdir: true
        run:
          - script: |
              echo "only-in-a=${ONLY_IN_A:-unset}"
              case "$PWD" in "$TMPDIR"/*) echo "workdir in the case's TMPDIR";; esac
              case "$TMPDIR" in */runner-test-*/tmp) echo "TMPDIR is the case's";; esac
    """,
    )
    (tmp_path / "steps.d" / "work").mkdir()
    first = make_case(
        tmp_path / "tests" / "a",
        env="ONLY_IN_A=from-a\n",
        case_yaml="expect: {stdoutContains: [only-in-a=from-a, workdir in the case's TMPDIR,"
        " TMPDIR is the case's]}\n",
    )
    second = make_case(
        tmp_path / "tests" / "b", case_yaml="expect: {stdoutContains: only-in-a=unset}\n"
    )
    result = runner_test(tmp_path, str(first), str(second))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ONLY_IN_A" not in os.environ


def test_a_secret_is_masked_in_the_cases_that_have_it_and_only_there(tmp_path):
    value = "token-of-case-a-only"
    write_step(
        tmp_path / "steps.d",
        "echo",
        """
        run:
          - script: echo "token=${API_TOKEN:-token-of-case-a-only}"
    """,
    )
    has_it = make_case(
        tmp_path / "tests" / "a",
        env=f"API_TOKEN={value}\n",
        case_yaml="expect: {stdoutContains: 'token=***'}\n",
    )
    # b prints the same text, which is no secret of b's: b's output shows it.
    lacks_it = make_case(
        tmp_path / "tests" / "b", case_yaml=f"expect: {{stdoutContains: 'token={value}'}}\n"
    )
    # c has it again: a's secret left nothing behind for b, nor b's run for c.
    again = make_case(
        tmp_path / "tests" / "c",
        env=f"API_TOKEN={value}\n",
        case_yaml="expect: {stdoutContains: 'token=***'}\n",
    )
    result = runner_test(tmp_path, str(has_it), str(lacks_it), str(again))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    shown = result.stdout.split("PASS tests/b")[1].split("PASS tests/c")[0]
    assert f"token={value}" in shown  # b's log, as b's run printed it
    for case in ("tests/a", "tests/c"):
        log = result.stdout.split(f"PASS {case}")[1].split("PASS")[0]
        assert value not in log


def test_runner_test_leaves_the_calling_process_as_it_found_it(tmp_path):
    write_step(tmp_path / "steps.d", "step", "run: [[bash, -c, 'echo ran']]")
    case = make_case(tmp_path / "tests" / "a", env="API_TOKEN=a-token-long-enough\n")
    mine = Masker()  # empty: other tests of this worker process may have taught the session's
    previous = set_session_masker(mine)

    def caller_handler(signum, frame):  # the caller's own, whatever it was before this test
        raise AssertionError(f"signal {signum} reached the caller")

    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
    before = {s: signal.signal(s, caller_handler) for s in signums}
    environ = dict(os.environ)
    try:
        result = runner_test(tmp_path, str(case))
        assert result.returncode == 0, result.stdout + result.stderr
        assert {s: signal.getsignal(s) for s in signums} == dict.fromkeys(signums, caller_handler)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert session_masker() is mine and not mine  # the case's secrets were not added
        assert interrupts.received() is None
        assert dict(os.environ) == environ
    finally:
        set_session_masker(previous)
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_case_whose_run_hangs_in_the_runner_still_ends_and_the_next_case_runs(
    tmp_path, monkeypatch
):
    from runner.engine import Engine

    original = Engine.run_step

    def run_step(self, prepared):  # the runner stuck after its engine took the signals
        if prepared.step.name == "stuck":
            time.sleep(60)
        return original(self, prepared)

    monkeypatch.setattr(Engine, "run_step", run_step)
    from runner.cases import inprocess

    monkeypatch.setattr(inprocess, "STOP_GRACE", 0.2)
    write_step(tmp_path / "steps.d", "stuck", "run: [[bash, -c, 'echo never']]")
    write_step(tmp_path / "steps.d", "fine", "run: [[bash, -c, 'echo fine ran']]")
    stuck = make_case(tmp_path / "tests" / "a", case_yaml="steps: [stuck]\ntimeout: 300ms\n")
    fine = make_case(tmp_path / "tests" / "b", case_yaml="steps: [fine]\n")
    started = time.monotonic()
    result = runner_test(tmp_path, str(stuck), str(fine))
    assert time.monotonic() - started < 30  # not the minute it sleeps
    assert result.returncode == 1
    assert "FAIL tests/a" in result.stdout and "timed out after 0.3s" in result.stdout
    assert "PASS tests/b" in result.stdout


def test_a_run_that_ignores_sigterm_is_ended_after_the_grace(tmp_path):
    """The engine's handler only records a signal: a run stuck outside the commands and lock
    waits does not notice it. The alarm after the grace ends it where it is."""
    from runner.cases import inprocess

    seen: list[int] = []

    def run(argv, env):
        signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
        env.stderr.write("started\n")
        time.sleep(60)
        return 0

    finished = inprocess.run_in_process(run, ["run"], {}, timeout=0.2, grace=0.2)
    assert finished.exit_code is None and finished.stderr == "started\n"
    assert seen == [signal.SIGTERM]  # it was told first, as `runner run` is by a SIGTERM
    assert interrupts.received() is None


def test_a_run_before_its_engine_is_ended_at_its_timeout(tmp_path):
    from runner.cases import inprocess

    def run(argv, env):
        time.sleep(60)
        return 0

    finished = inprocess.run_in_process(run, ["run"], {}, timeout=0.2, grace=60)
    assert finished.exit_code is None


def test_a_signal_during_a_case_stops_the_case_and_then_runner_test(tmp_path):
    from runner.cases import inprocess

    def run(argv, env):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        return 0

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        inprocess.run_in_process(run, ["run"], {}, timeout=10)
    assert signal.getsignal(signal.SIGINT) is handler
    assert interrupts.received() is None


def test_an_executor_closes_its_pipes_and_those_background_processes_hold(tmp_path, leftovers):
    from runner.platform.execute import Executor
    from runner.platform.log import Logger

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    executor = Executor(Logger(stream=io.StringIO(), out=io.StringIO()))
    script = "sleep 30 & echo $!"
    pid_file = tmp_path / "pid"
    outcome = executor.run(["bash", "-c", script], tmp_path, dict(os.environ), stdout_file=pid_file)
    leftovers.append(int(pid_file.read_text()))
    assert outcome.exit_code == 0
    executor.close()
    assert open_fds() == before


def test_what_a_library_writes_to_sys_stderr_during_a_case_is_the_cases(tmp_path, monkeypatch):
    import sys

    from runner.engine import Engine

    original = Engine.run_step

    def run_step(self, prepared):
        print("a library's warning", file=sys.stderr)
        return original(self, prepared)

    monkeypatch.setattr(Engine, "run_step", run_step)
    write_step(tmp_path / "steps.d", "step", "run: [[bash, -c, 'echo ran']]")
    case = make_case(
        tmp_path / "tests" / "a", case_yaml="expect: {stderrContains: a library's warning}\n"
    )
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_runner_test_in_the_same_process_reads_the_steps_as_they_are_now(tmp_path):
    case = make_case(tmp_path / "tests" / "a")
    (case / "output").mkdir()
    (case / "output" / "key.txt").write_text("***\n")
    write_step(
        tmp_path / "steps.d", "step", "run: [[bash, -c, 'echo $KEY > $KRATIX_OUTPUT_DIR/key.txt']]"
    )
    (case / "env").write_text("KEY=plain-looking-but-secret\n")
    assert runner_test(tmp_path, str(case)).returncode == 1  # not a secret yet: written as is
    write_step(
        tmp_path / "steps.d",
        "step",
        """
        secrets: {KEY: {env: KEY}}
        run: [[bash, -c, 'echo $KEY > $KRATIX_OUTPUT_DIR/key.txt']]
    """,
    )
    result = runner_test(tmp_path, str(case))  # a secret now: masked in what is compared
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_stops_the_running_cases_their_commands_and_runner_test(tmp_path, jobs):
    """A cancelled CI job: each case under way stops its command as `runner run` does and
    removes its folder, and `runner test` exits 130 without running the rest."""
    import subprocess
    import sys

    pids = tmp_path / "pids"
    pids.mkdir()
    write_step(
        tmp_path / "steps.d", "wait", "run: [[bash, -c, 'echo $$ > $PIDS/$CASE; exec sleep 30']]"
    )
    cases = [
        make_case(tmp_path / "tests" / name, env=f"PIDS={pids}\nCASE={name}\n")
        for name in ("a", "b", "c")
    ]
    (tmp_path / "tmp").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "test", "-j", jobs, *map(str, cases)],
        env=base_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(list(pids.iterdir())) < int(jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = [int(p.read_text()) for p in pids.iterdir()]
    assert len(started) == int(jobs)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert sorted(p.name for p in pids.iterdir()) == sorted(["a", "b"][: int(jobs)])  # c never ran
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert list((tmp_path / "tmp").iterdir()) == []  # every case's folder removed


def test_what_the_run_learned_is_secret_is_masked_in_what_runner_test_shows_and_compares(
    tmp_path,
):
    """A state key read from a variable not named like a secret: `runner run` masks it from the
    moment it reads it, and so does `runner test`, in the produced files and their diffs."""
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    write_step(
        tmp_path / "steps.d",
        "keep",
        """
        state: {store: local, files: [{path: f.txt}], encryption: {key: {env: STATE_ENC}}}
        workdir: work
        copyWorkdir: true
        run:
          - script: |
              echo kept > f.txt
              echo "$STATE_ENC" > "$KRATIX_OUTPUT_DIR/key.txt"
              echo "$STATE_ENC" > "$KRATIX_OUTPUT_DIR/unexpected.txt"
    """,
    )
    (tmp_path / "steps.d" / "work").mkdir()
    case = make_case(tmp_path / "tests" / "a", env=f"STATE_ENC={key}\n")
    (case / "output").mkdir()
    (case / "output" / "key.txt").write_text("***\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 1, result.stdout + result.stderr  # unexpected.txt
    assert "output/key.txt" not in result.stdout  # equal: the key is masked in it
    assert "output/unexpected.txt: produced, but not expected" in result.stdout
    assert key not in result.stdout + result.stderr
    assert runner_test(tmp_path, "--update", str(case)).returncode == 0
    assert (case / "output" / "unexpected.txt").read_text() == "***\n"


def test_a_masker_extended_with_another_masks_every_form_of_its_secrets():
    import base64

    from runner.platform.masking import Masker

    run = Masker(["s3cret-of-the-run"])
    case = Masker(["case-own-secret"])
    assert case.mask("s3cret-of-the-run") == "s3cret-of-the-run"
    case.extend(run)
    encoded = base64.b64encode(b"s3cret-of-the-run").decode()
    text = f"a=s3cret-of-the-run b={encoded} c=case-own-secret d=s3cret%2Dof-the-run"
    assert case.mask(text) == "a=*** b=*** c=*** d=***"  # percent-escaped too
    assert run.mask("case-own-secret") == "case-own-secret"  # the other is left as it was


def test_in_parallel_a_case_that_even_the_alarm_cannot_end_is_killed(tmp_path, monkeypatch):
    import tempfile

    from runner.cases import forked
    from runner.engine import Engine

    original = Engine.run_step

    def run_step(self, prepared):  # stuck with the signals blocked: only a kill ends it
        if prepared.step.name == "stuck":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
            time.sleep(60)
        return original(self, prepared)

    monkeypatch.setattr(Engine, "run_step", run_step)
    monkeypatch.setattr(forked, "STOP_GRACE", 0.2)
    monkeypatch.setattr(forked, "_MARGIN", 0.2)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where its folder stays
    write_step(tmp_path / "steps.d", "stuck", "run: [[bash, -c, 'echo never']]")
    write_step(tmp_path / "steps.d", "fine", "run: [[bash, -c, 'echo fine ran']]")
    stuck = make_case(tmp_path / "tests" / "a", case_yaml="steps: [stuck]\ntimeout: 300ms\n")
    fine = make_case(tmp_path / "tests" / "b", case_yaml="steps: [fine]\n")
    started = time.monotonic()
    result = runner_test(tmp_path, "-j", "2", "--format", "json", str(stuck), str(fine))
    assert time.monotonic() - started < 30
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [a, b] = report["cases"]
    assert a["status"] == "error" and a["exitCode"] is None
    assert "its process was killed" in a["error"]
    assert b["status"] == "pass"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_keep_keeps_each_cases_folder_with_the_runs_own_files(tmp_path, jobs):
    import re
    import shutil

    write_step(
        tmp_path / "steps.d",
        "write",
        """
        run: [[bash, -c, 'echo "$API_TOKEN" > $KRATIX_OUTPUT_DIR/token.txt']]
    """,
    )
    cases = [
        make_case(tmp_path / "tests" / name, env=f"API_TOKEN=token-of-case-{name}\n")
        for name in ("a", "b")
    ]
    for case in cases:
        (case / "output").mkdir()
        (case / "output" / "token.txt").write_text("***\n")
    result = runner_test(tmp_path, "--keep", "-j", jobs, *map(str, cases))
    assert result.returncode == 0, result.stdout + result.stderr
    kept = re.findall(r"results kept in (\S+)", result.stdout)
    assert len(kept) == 2
    try:
        for name, folder in zip(("a", "b"), kept, strict=True):
            assert f"runner-test-{name}-" in folder
            assert (Path(folder) / "output" / "token.txt").read_text() == f"token-of-case-{name}\n"
    finally:
        for folder in kept:
            shutil.rmtree(folder)
