"""runner.platform.execute in process: waiting without polling or threads, output that a background
process keeps open, incremental decoding, forwarded signals, and the no-pidfd fallback."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from runner.platform import execute
from runner.platform.execute import Executor
from runner.platform.log import Logger
from runner.platform.masking import Masker

PY = sys.executable


class Captured:
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.log = Logger("text", masker=Masker(secrets), stream=self.err, out=self.out)
        self.executor = Executor(self.log, grace_seconds=1.0)

    def run(self, argv: list[str], cwd: Path, **kwargs) -> execute.Outcome:
        return self.executor.run(argv, cwd, {"PATH": os.environ["PATH"]}, **kwargs)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(params=["pidfd", "reaper-thread"])
def mode(request, monkeypatch):
    """Each test runs with a pidfd (where the kernel has one) and with the fallback."""
    if request.param == "pidfd":
        if not execute._pidfd_works:
            pytest.skip("no pidfd_open here")
    else:
        monkeypatch.setattr(execute, "_pidfd_works", False)
    return request.param


def test_a_quick_command_gives_its_code_and_output(tmp_path, mode):
    c = Captured()
    outcome = c.run(["sh", "-c", "echo out; echo err >&2; exit 3"], tmp_path)
    assert outcome.exit_code == 3 and not outcome.ok
    assert c.out.getvalue() == "out\n"
    assert c.err.getvalue() == "err\n"


@pytest.mark.skipif(not execute._pidfd_works, reason="no pidfd_open here")
def test_waiting_starts_no_thread_with_a_pidfd(tmp_path):
    c = Captured()
    # Compare thread sets, not counts: a thread another test left behind may end meanwhile.
    before = set(threading.enumerate())
    seen: list[set[threading.Thread]] = []
    timer = threading.Timer(0.2, lambda: seen.append(set(threading.enumerate())))
    timer.start()
    outcome = c.run(["sleep", "0.4"], tmp_path)
    assert outcome.ok
    assert len(seen) == 1
    assert seen[0] - before == {timer}  # the timer itself, nothing else


def test_a_background_process_holding_stdout_does_not_delay_the_command(tmp_path, mode, leftovers):
    c = Captured()
    script = "sleep 30 & echo $! > child.pid; echo started"
    started = time.monotonic()
    outcome = c.run(["bash", "-c", script], tmp_path)
    took = time.monotonic() - started
    child = int((tmp_path / "child.pid").read_text())
    leftovers.append(child)
    assert outcome.ok, outcome
    assert took < 0.5, f"took {took:.2f}s"
    assert c.out.getvalue() == "started\n"
    # Success leaves the process group alone: a step may start a helper on purpose.
    assert alive(child)


def test_a_helpers_later_output_is_logged_while_later_commands_run(tmp_path, mode, leftovers):
    c = Captured(secrets=("hunter2-secret",))
    helper = "(sleep 0.3; echo late line hunter2-secret; echo late err >&2) & echo $! > h.pid"
    c.run(["true"], tmp_path)  # the self-pipe is made once
    fds = open_fds()
    first = c.run(["bash", "-c", helper + "; printf 'no newline'"], tmp_path)
    leftovers.append(int((tmp_path / "h.pid").read_text()))
    assert first.ok and first.duration < 0.5, first
    second = c.run(["sleep", "0.8"], tmp_path)
    assert second.ok
    out = c.out.getvalue()
    assert "late line ***" in out and "hunter2" not in out
    assert "no newline" in out  # held back with the helper's line, never lost
    assert "late err\n" in c.err.getvalue()
    assert open_fds() == fds, "the helper's pipes were not closed at its end of file"


def test_stdout_file_gets_what_the_command_wrote_before_it_exited(tmp_path, mode, leftovers):
    c = Captured()
    script = "echo mine; (sleep 0.5; echo helper) & echo $! > h.pid"
    outcome = c.run(["bash", "-c", script], tmp_path, stdout_file=tmp_path / "out.txt")
    leftovers.append(int((tmp_path / "h.pid").read_text()))
    assert outcome.ok, outcome
    assert (tmp_path / "out.txt").read_bytes() == b"mine\n"


def test_a_multibyte_character_split_between_reads_is_decoded_whole(tmp_path, mode):
    c = Captured()
    code = (
        "import sys, time; o = sys.stdout.buffer\n"
        "for part in (b'caf\\xc3', b'\\xa9 \\xff', b'!\\n'):\n"
        "    o.write(part); o.flush(); time.sleep(0.05)\n"
    )
    outcome = c.run([PY, "-c", code], tmp_path, stdout_file=tmp_path / "o.bin")
    assert outcome.ok, outcome
    assert (tmp_path / "o.bin").read_bytes() == b"caf\xc3\xa9 \xff!\n"
    assert c.out.getvalue() == "café \ufffd!\n"


def test_a_timeout_kills_the_group_after_the_grace(tmp_path, mode, leftovers):
    c = Captured()
    script = "trap '' TERM; sleep 30 & echo $! > child.pid; wait"
    started = time.monotonic()
    outcome = c.run(["bash", "-c", script], tmp_path, timeout=0.3)
    took = time.monotonic() - started
    child = int((tmp_path / "child.pid").read_text())
    leftovers.append(child)
    assert outcome.timed_out and outcome.exit_code == -signal.SIGKILL, outcome
    assert 1.2 < took < 3, took  # 0.3 s, then 1 s of grace
    deadline = time.monotonic() + 2
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_an_interrupt_is_forwarded_once_and_stops_the_command(tmp_path, mode):
    c = Captured()
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; sleep 30 & wait"
    threading.Timer(0.3, c.executor.interrupt, args=(signal.SIGTERM,)).start()
    started = time.monotonic()
    outcome = c.run(["bash", "-c", script], tmp_path)
    assert time.monotonic() - started < 2
    assert outcome.signalled == signal.SIGTERM and outcome.exit_code == 0
    assert c.out.getvalue() == "ready\ngot TERM\n"
    # Later commands do not start.
    assert c.run(["true"], tmp_path).signalled == signal.SIGTERM


def test_a_program_that_cannot_be_executed_says_why(tmp_path, mode):
    c = Captured()
    script = tmp_path / "not-a-program"
    script.write_bytes(b"\x00\x01\x02")
    script.chmod(0o755)
    outcome = c.run(["./not-a-program"], tmp_path)
    assert outcome.exit_code is None
    assert outcome.error == "cannot start ./not-a-program: Exec format error"


def test_argv0_is_as_written_and_the_program_found_on_path(tmp_path, mode):
    c = Captured()
    outcome = c.run(["python3", "-c", "import sys; print(sys.argv[0])"], tmp_path)
    assert outcome.ok
    assert c.out.getvalue() == "-c\n"
    c.run(["sh", "-c", 'echo "$0"'], tmp_path)
    assert c.out.getvalue() == "-c\nsh\n"


def test_no_descriptor_is_left_open_by_a_run(tmp_path, mode):
    c = Captured()
    c.run(["true"], tmp_path)  # the self-pipe is made once
    fds = open_fds()
    for argv in (["true"], ["false"], ["sh", "-c", "echo x; echo y >&2"], ["missing-program"]):
        c.run(argv, tmp_path)
    c.run(["true"], tmp_path, stdout_file=tmp_path / "out.txt")
    assert open_fds() == fds


def test_output_is_logged_a_whole_line_at_a_time(tmp_path, mode):
    err = io.StringIO()
    executor = Executor(Logger("json", stream=err, out=io.StringIO()), grace_seconds=1.0)
    code = (
        "import sys, time\n"
        "for part in ('a', 'b\\nc', 'd'):\n"
        "    sys.stdout.write(part); sys.stdout.flush(); time.sleep(0.1)\n"
    )
    outcome = executor.run([PY, "-c", code], tmp_path, {"PATH": os.environ["PATH"]})
    assert outcome.ok, outcome
    assert [json.loads(line)["msg"] for line in err.getvalue().splitlines()] == ["ab", "cd"]


def test_a_long_line_flows_in_pieces_and_arrives_whole(tmp_path, mode):
    c = Captured()
    code = "import sys; sys.stdout.write('x' * 300_000); sys.stdout.flush()"
    outcome = c.run([PY, "-c", code], tmp_path)
    assert outcome.ok, outcome
    assert c.out.getvalue() == "x" * 300_000 + "\n"
