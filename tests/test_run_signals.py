"""`runner run` stopped by a signal, or by a failure or timeout: what happens to the command and
to the step's state."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runner.state.base import StateRef
from runner.state.local import LocalStore

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def stored(pipeline, step: str) -> dict[str, bytes] | None:
    """The step's state as the local store holds it (name: <object>-<step>)."""
    ref = StateRef(step=step, name=f"my-app-{step}", namespace="default")
    loaded = LocalStore(pipeline.state_dir).load(ref)
    return None if loaded is None else loaded.files


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie is as good as gone


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_line(process: subprocess.Popen[str], wanted: str) -> None:
    """Read the runner's stdout until the command has printed `wanted`."""
    for line in process.stdout:
        if line.strip() == wanted:
            return
    raise AssertionError(f"{wanted!r} never printed; stderr: {process.stderr.read()}")


def stop(process: subprocess.Popen[str], signum: int) -> tuple[int, float, str]:
    """Send signum; return the exit code, how long the runner took to exit, and its stderr."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    return process.returncode, time.monotonic() - sent, err


def state_step(save: str, script: str) -> str:
    indented = "".join(f"      {line}\n" for line in textwrap.dedent(script).strip().splitlines())
    return (
        "workdir: ../work\n"
        f"state: {{ store: local, files: [{{ path: state.txt }}], save: {save} }}\n"
        "run:\n"
        "  - script: |\n"
        f"{indented}"
        "  - [touch, after]\n"
    )


# -- a signal while a command runs --------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_is_forwarded_and_state_saved_before_exiting(pipeline, signum, leftovers):
    # Like terraform: the command writes its state when told to stop.
    pipeline.step(
        "sig",
        state_step(
            "always",
            """
        trap 'echo TERM > got.txt; echo written-on-term > state.txt; exit 0' TERM
        trap 'echo INT > got.txt; echo written-on-int > state.txt; exit 0' INT
        echo before > state.txt
        sleep 30 & echo $! > child.pid
        echo ready
        wait
    """,
        ),
    )
    process = pipeline.popen("run")
    wait_for_line(process, "ready")
    code, took, err = stop(process, signum)
    child = int((pipeline.work / "child.pid").read_text())
    leftovers.append(child)
    assert code == EXIT[signum], err
    assert took < 5, took
    name = signal.Signals(signum).name
    assert (pipeline.work / "got.txt").read_text() == name[3:] + "\n"
    assert stored(pipeline, "sig") == {"state.txt": f"written-on-{name[3:].lower()}\n".encode()}
    assert f"received {name}" in err
    assert "Traceback" not in err
    assert not (pipeline.work / "after").exists()
    # A non-interactive bash starts `&` jobs with SIGINT ignored: the sleep must go all the same.
    assert wait_gone(child), "the command's background process outlived the runner"


def test_sigterm_kills_a_command_without_a_trap_and_saves_what_it_wrote(pipeline, leftovers):
    pipeline.step(
        "sig",
        state_step(
            "always",
            """
        echo $$ > pid
        echo from-the-command > state.txt
        echo ready
        sleep 30
    """,
        ),
    )
    process = pipeline.popen("run")
    wait_for_line(process, "ready")
    code, took, err = stop(process, signal.SIGTERM)
    pid = int((pipeline.work / "pid").read_text())
    leftovers.append(pid)
    assert code == 143, err
    assert took < 5, took
    assert wait_gone(pid)
    assert stored(pipeline, "sig") == {"state.txt": b"from-the-command\n"}
    # The next run restores it before its first command.
    (pipeline.work / "state.txt").unlink()
    pipeline.step(
        "sig",
        """
        workdir: ../work
        state: { store: local, files: [{ path: state.txt }] }
        run:
          - [cat, state.txt]
    """,
    )
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-the-command\n"


def test_sigterm_with_save_on_success_does_not_save(pipeline):
    pipeline.step(
        "sig",
        state_step(
            "on-success",
            """
        echo half-done > state.txt
        echo ready
        sleep 30
    """,
        ),
    )
    process = pipeline.popen("run")
    wait_for_line(process, "ready")
    code, took, err = stop(process, signal.SIGTERM)
    assert code == 143, err
    assert took < 5, took
    assert stored(pipeline, "sig") is None


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(pipeline, leftovers):
    pipeline.step(
        "sig",
        state_step(
            "always",
            """
        trap '' TERM
        echo stubborn > state.txt
        sleep 60 & echo $! > child.pid
        echo ready
        wait
    """,
        ),
    )
    process = pipeline.popen("run", env={"RUNNER_KILL_GRACE": "1"})
    wait_for_line(process, "ready")
    code, took, err = stop(process, signal.SIGTERM)
    child = int((pipeline.work / "child.pid").read_text())
    leftovers.append(child)
    assert code == 143, err
    assert 0.9 < took < 4, f"exited {took:.2f}s after SIGTERM with a 1s grace"
    assert wait_gone(child)
    assert stored(pipeline, "sig") == {"state.txt": b"stubborn\n"}


def test_an_unusable_kill_grace_is_refused_before_anything_runs(pipeline):
    pipeline.step(
        "ok",
        """
        workdir: ../work
        run:
          - [touch, ran]
    """,
    )
    r = pipeline.run("run", env={"RUNNER_KILL_GRACE": "soon"})
    assert r.returncode == 2, r.stderr
    assert 'RUNNER_KILL_GRACE="soon" is not valid' in r.stderr
    assert not (pipeline.work / "ran").exists()


# -- failures and timeouts ----------------------------------------------------------------------


@pytest.mark.parametrize("save", ["always", "on-success"])
@pytest.mark.parametrize("how", ["fails", "times-out"])
def test_state_after_a_failed_or_timed_out_command(pipeline, save, how):
    ending = "exit 7" if how == "fails" else "sleep 30"
    body = state_step(
        save,
        f"""
        echo partial > state.txt
        {ending}
    """,
    )
    if how == "times-out":
        body = "timeout: 0.5s\n" + body
    pipeline.step("sig", body)
    r = pipeline.run("run", env={"RUNNER_KILL_GRACE": "2"})
    assert r.returncode == 1, r.stderr
    assert ("timed out" if how == "times-out" else "exited with 7") in r.stderr
    assert not (pipeline.work / "after").exists()
    if save == "always":
        assert stored(pipeline, "sig") == {"state.txt": b"partial\n"}
    else:
        assert stored(pipeline, "sig") is None
        assert "not saving state" in r.stderr


def test_state_is_saved_after_success_with_on_success(pipeline):
    pipeline.step("sig", state_step("on-success", "echo done > state.txt"))
    r = pipeline.run("run")
    assert r.returncode == 0, r.stderr
    assert stored(pipeline, "sig") == {"state.txt": b"done\n"}


LOG_FROM_A_HANDLER = """
import io, os, signal
from runner.platform.log import Logger

class Stream(io.StringIO):
    def write(self, text):
        if "main line" in text:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs while _emit holds the lock
        return super().write(text)

stream = Stream()
log = Logger("text", stream=stream, out=stream)
signal.signal(signal.SIGTERM, lambda *_: log.warning("received SIGTERM: stopping"))
log.info("main line")
print(stream.getvalue(), end="")
"""


def test_logging_from_a_signal_handler_while_a_line_is_written_does_not_deadlock(pipeline):
    r = subprocess.run(
        [sys.executable, "-c", LOG_FROM_A_HANDLER],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines(keepends=True)) == [
        "runner: main line\n",
        "runner: warning: received SIGTERM: stopping\n",
    ]


@pytest.mark.slow
def test_sigterm_while_a_big_file_is_staged_exits_143_at_once(pipeline):
    """A `file:` of many documents is read, checked and staged one document at a time, which
    can take longer than Kubernetes' grace period: a signal ends it between two documents
    (it ran on for 20 s and exited 0 before)."""
    pipeline.step("render", "workdir: ../work\nmanifests: [{ path: many.yaml, file: many.yaml }]\n")
    (pipeline.work / "many.yaml").write_text("---\nk: 1\n" * 600_000)
    process = pipeline.popen("run")
    try:
        time.sleep(3)  # started, and staging: 600,000 documents take 15 s or more
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert not (pipeline.output / "many.yaml").exists()
