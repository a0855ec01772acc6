"""Settings refused before anything runs, the one error boundary, and what locks tell the log:
`runner run` as a subprocess, and in-process where a bug has to be provoked."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

from runner.platform.settings import SETTINGS
from tests.conftest import REPO, hold_lease, runner_in_process, use_kube_api

TOUCH = """
    workdir: ../work
    run:
      - [touch, ran]
"""

SECRET = "hunter2-very-secret"
SECRETIVE = """
    secrets:
      TOKEN: { env: MY_TOKEN }
    workdir: ../work
    run:
      - [touch, ran]
"""

COUNTER = """
    state:
      store: configmap
      name: counter
      files: [{path: count.txt, key: count}]
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          {pause}
          echo $((n + 1)) > count.txt
"""


@pytest.fixture
def kube(api, pipeline):
    return use_kube_api(pipeline, api, lease_seconds=2)


def bare(pipeline, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`runner ARGV` without the Kratix folder options (for `validate`)."""
    result = subprocess.run(
        [sys.executable, "-m", "runner", *argv], cwd=pipeline.work, env={**pipeline.env, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def json_records(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines()]


# -- bad settings: exit 2, one line, nothing run --------------------------------------------


BAD = [
    ("RUNNER_LOCK_WAIT", "1x"),
    ("RUNNER_LOCK_WAIT", "-5"),
    ("RUNNER_LEASE_SECONDS", "1.5"),
    ("RUNNER_LEASE_SECONDS", "60x"),
    ("RUNNER_KUBE_ATTEMPTS", "x"),
    ("RUNNER_KUBE_ATTEMPTS", "0"),
    ("RUNNER_LOG_FORMAT", "yaml"),
    ("RUNNER_KILL_GRACE", "-1"),
    ("KRATIX_DRY_RUN", "maybe"),
    ("RUNNER_DEBUG", "2"),
]


@pytest.mark.parametrize(("variable", "value"), BAD, ids=[f"{v}={x}" for v, x in BAD])
def test_a_bad_setting_exits_2_with_one_line_before_anything_runs(pipeline, variable, value):
    pipeline.step("touch", TOUCH)
    result = pipeline.run("run", env={variable: value})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f'runner: {variable}="{value}" is not valid: expected '), line
    assert not (pipeline.work / "ran").exists()


def test_a_bad_setting_is_refused_by_every_command(pipeline):
    pipeline.step("touch", TOUCH)
    result = bare(pipeline, "validate", str(pipeline.steps), env={"RUNNER_LEASE_SECONDS": "soon"})
    assert result.returncode == 2
    assert 'RUNNER_LEASE_SECONDS="soon" is not valid' in result.stderr


def test_a_bad_setting_is_a_json_record_with_the_json_log_format(pipeline):
    pipeline.step("touch", TOUCH)
    result = pipeline.run("run", "--log-format", "json", env={"RUNNER_LOCK_WAIT": "soon"})
    assert result.returncode == 2
    [record] = json_records(result.stderr)
    assert record["level"] == "error" and record["exit_code"] == 2
    assert record["msg"].startswith('RUNNER_LOCK_WAIT="soon" is not valid')


def test_a_bad_lock_wait_option_is_a_usage_error(pipeline):
    pipeline.step("touch", TOUCH)
    result = pipeline.run("run", "--lock-wait", "soon")
    assert result.returncode == 2
    assert 'argument --lock-wait: "soon" is not valid: expected a duration' in result.stderr
    assert not (pipeline.work / "ran").exists()


# -- good forms -----------------------------------------------------------------------------


def test_upper_case_json_log_format_gives_json_records(pipeline):
    pipeline.step("touch", TOUCH)
    result = pipeline.run("run", env={"RUNNER_LOG_FORMAT": "JSON"})
    assert result.returncode == 0, result.stderr
    records = json_records(result.stderr)
    assert any(r.get("event") == "step-end" for r in records), records


def test_upper_case_json_log_format_reports_validate_usage_errors_as_json(pipeline, tmp_path):
    result = bare(
        pipeline, "validate", "--stamp", str(tmp_path), str(tmp_path),
        env={"RUNNER_LOG_FORMAT": "JSON"},
    )  # fmt: skip
    assert result.returncode == 2
    [record] = json_records(result.stderr)
    assert "--stamp needs exactly one steps folder" in record["msg"]


def test_a_yes_dry_run_is_a_dry_run(pipeline):
    pipeline.step("touch", TOUCH)
    result = pipeline.run("run", env={"KRATIX_DRY_RUN": "yes"})
    assert result.returncode == 0, result.stderr
    assert "dry run: the step has no dryRun commands; none run" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_durations_with_units_are_accepted_for_lock_wait_and_kill_grace(pipeline):
    pipeline.step("touch", TOUCH)
    env = {"RUNNER_LOCK_WAIT": "1m", "RUNNER_KILL_GRACE": "1m30s"}
    result = pipeline.run("run", env=env)
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "ran").exists()
    result = pipeline.run("run", "--lock-wait", "500ms")
    assert result.returncode == 0, result.stderr


def test_a_lease_duration_given_as_a_duration(kube, pipeline):
    pipeline.step("counter", COUNTER.replace("{pause}", ""))
    result = pipeline.run("run", env={"RUNNER_LEASE_SECONDS": "1m"})
    assert result.returncode == 0, result.stderr
    assert kube.get_object("leases", "default", "counter")["spec"]["leaseDurationSeconds"] == 60


def test_kube_attempts_bound_the_retries(kube, pipeline):
    pipeline.step("counter", COUNTER.replace("{pause}", ""))
    kube.fail(rate=1.0, status=503)
    result = pipeline.run("run", env={"RUNNER_KUBE_ATTEMPTS": "2"})
    assert result.returncode == 3, result.stderr
    assert "after 2 attempts" in result.stderr


def test_every_setting_is_in_the_cli_reference_table():
    reference = (REPO / "docs" / "cli.md").read_text()
    for setting in SETTINGS:
        assert f"| `{setting.variable}` |" in reference, setting.variable


# -- the error boundary ---------------------------------------------------------------------


def _break_preparation(monkeypatch):
    """A bug after the secrets are known: preparing a step raises, quoting a secret."""
    import runner.engine.session as session

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot render token {SECRET}\nsecond line")

    monkeypatch.setattr(session, "prepare", broken)


def _in_process(pipeline, monkeypatch, *argv: str, **env: str) -> int:
    from runner import cli

    for name in list(os.environ):
        if name.startswith(("RUNNER_", "KRATIX_")):
            monkeypatch.delenv(name)
    for name, value in {**pipeline.env, "MY_TOKEN": SECRET, **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(pipeline.work)
    return cli.main(["run", *pipeline.args(), *argv])


def test_an_internal_error_is_one_masked_line_and_exit_4(pipeline, monkeypatch, capsys):
    pipeline.step("secretive", SECRETIVE)
    _break_preparation(monkeypatch)
    code = _in_process(pipeline, monkeypatch)
    err = capsys.readouterr().err
    assert code == 4
    [line] = err.splitlines()
    assert line.startswith("runner: internal error: RuntimeError: cannot render token *** second")
    assert "please report" in line and "RUNNER_DEBUG=1" in line
    assert SECRET not in err and "Traceback" not in err
    assert not (pipeline.work / "ran").exists()


def test_an_internal_error_is_one_json_record_with_the_json_log_format(
    pipeline, monkeypatch, capsys
):
    pipeline.step("secretive", SECRETIVE)
    _break_preparation(monkeypatch)
    code = _in_process(pipeline, monkeypatch, "--log-format", "json")
    err = capsys.readouterr().err
    assert code == 4
    [record] = json_records(err)
    assert record["exit_code"] == 4 and record["msg"].startswith("internal error: RuntimeError")
    assert SECRET not in err


def test_runner_debug_adds_the_masked_traceback(pipeline, monkeypatch, capsys):
    pipeline.step("secretive", SECRETIVE)
    _break_preparation(monkeypatch)
    code = _in_process(pipeline, monkeypatch, RUNNER_DEBUG="1")
    err = capsys.readouterr().err
    assert code == 4
    assert err.splitlines()[0].startswith("runner: internal error: RuntimeError")
    assert "Traceback (most recent call last)" in err and "in broken" in err
    assert SECRET not in err


def test_the_error_boundary_writes_to_the_injected_stderr(pipeline, monkeypatch, capsys):
    """In process with an Environment: RUNNER_DEBUG is read from it, and the masked line and
    traceback go to its stderr, not the process's."""
    pipeline.step("secretive", SECRETIVE)
    _break_preparation(monkeypatch)
    monkeypatch.delenv("RUNNER_DEBUG", raising=False)
    environ = {**pipeline.env, "MY_TOKEN": SECRET, "RUNNER_DEBUG": "1"}
    result = runner_in_process(["plan", *pipeline.args()], pipeline.work, environ)
    assert result.returncode == 4
    assert result.stderr.splitlines()[0].startswith("runner: internal error: RuntimeError")
    assert "Traceback (most recent call last)" in result.stderr and "in broken" in result.stderr
    assert SECRET not in result.stderr and result.stdout == ""
    assert capsys.readouterr() == ("", "")


def test_an_internal_error_in_a_runner_process_exits_4_without_a_traceback(pipeline):
    """The same bug in a real process: the error boundary is `runner`'s own, not pytest's."""
    pipeline.step("secretive", SECRETIVE)
    script = (
        "import os, runner.engine.session as session, runner.cli as cli\n"
        "def broken(*a, **k): raise KeyError(os.environ['MY_TOKEN'])\n"
        "session.prepare = broken\n"
        "cli.console()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "run", *pipeline.args()],
        cwd=pipeline.work, env={**pipeline.env, "MY_TOKEN": SECRET},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("runner: internal error: KeyError: '***'"), line
    assert SECRET not in result.stderr


# -- locks: waiting is told, a lapsed lease is lost -----------------------------------------


def test_a_run_waiting_for_a_lease_says_who_holds_it(kube, pipeline):
    pipeline.step("counter", COUNTER.replace("{pause}", ""))
    hold_lease(kube, "counter", "busy-pod/7", seconds=300)
    result = pipeline.run("run", "--lock-wait", "1s")
    assert "waiting for Lease default/counter, held by busy-pod/7" in result.stderr
    assert "giving up after 1s" in result.stderr
    assert "gave up after 1s" in result.stderr


def test_a_run_waiting_for_a_local_lock_says_who_holds_it(pipeline):
    pipeline.step(
        "local",
        """
        state: {store: local, name: app-state, files: [{path: s.txt}]}
        workdir: ../work
        run:
          - [touch, ran]
    """,
    )
    path = pipeline.state_dir / "default" / "app-state.lock"
    path.parent.mkdir(parents=True)
    with open(path, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("pid 4242")
        holder.flush()
        result = pipeline.run("run", "--lock-wait", "1")
    assert "[local] waiting for the lock of state local" in result.stderr
    assert "held by pid 4242" in result.stderr
    assert not (pipeline.work / "ran").exists()


@pytest.mark.slow
def test_a_lease_that_cannot_be_renewed_is_lost_and_the_state_not_saved(kube, pipeline):
    """The API refuses every renewal: once the Lease lapsed another run could hold it, so
    the run must not save over that run's state."""
    pipeline.step("counter", COUNTER.replace("{pause}", "sleep 3"))
    kube.forbid("update", "leases")  # taking a new Lease is a create: only renewals fail
    result = pipeline.run("run")
    assert result.returncode == 3, result.stderr
    assert "warning: lost Lease default/counter (not renewed for" in result.stderr
    assert "cannot update leases" in result.stderr
    assert "not saving over what another run may have saved" in result.stderr
    assert kube.get_object("configmaps", "default", "counter") is None
