"""`runner run` stopped by SIGTERM, SIGINT or SIGKILL while restoring, running and saving.

After SIGTERM (SIGINT) the runner saves what the command wrote and exits promptly with 143
(130). After SIGKILL the stored state is exactly the old one or exactly the new one (compared
by digest with `expected_state`), and the next run recovers: the dead run's Lease expires
(RUNNER_LEASE_SECONDS=2) and is taken over, or its flock died with it.

Phases are hit deterministically: the API server answers each request after LATENCY seconds
and the state is several MiB of incompressible bytes (4 chunk objects), so restoring is several
GETs and saving several POSTs and a PUT; the signal goes out when the server's request log
shows the phase has begun. For the local store a 64 MB state makes restoring and saving
long enough to catch by watching the lock file and the save's staging folder.
`test_sigkill_at_measured_offsets` kills at fixed fractions of a measured run instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import hold_lease
from tests.reliability.helpers import (
    BIG_KUBE,
    BIG_LOCAL,
    STATE_NAME,
    counter_step,
    finish,
    intervals,
    kill_quietly,
    lease_holder,
    stored,
    stored_local,
    wait_for_line,
    wait_until,
    which_state,
)

TERM, INT, KILL = signal.SIGTERM, signal.SIGINT, signal.SIGKILL
LATENCY = 0.1  # seconds before the API server answers each request
EXIT = {TERM: 143, INT: 130, KILL: -9}

# (phase, signal) -> the state kept: 0 = the old one, 1 = the new one
KEPT = {
    ("restoring", TERM): 0,
    ("restoring", KILL): 0,
    ("running", TERM): 1,  # the command wrote its state; SIGTERM saves it
    ("running", INT): 1,
    ("running", KILL): 0,
    ("saving", TERM): 1,  # the save in progress finishes, then the runner exits
    ("saving", INT): 1,
    ("saving", KILL): 0,  # chunks written, main object not yet: the old state
    ("saved", KILL): 1,  # main object written, old chunks not yet deleted: the new state
}


def _stop(process, signum, ledger, timeout: float) -> tuple[int, str, str, float]:
    """Send `signum` to the runner and wait for it: exit code, stdout, stderr, seconds taken."""
    process.send_signal(signum)
    sent = time.monotonic()
    ledger["signals"] += 1
    code, out, err = finish(process, timeout)
    return code, out, err, time.monotonic() - sent


def kube_trigger(api, phase: str, ready: Path):
    return {
        "restoring": lambda: api.count("GET", "/configmaps/counter-") >= 1,
        "running": ready.exists,
        "saving": lambda: api.count("POST", "/namespaces/default/configmaps") >= 1,
        "saved": lambda: api.count("PUT", "/configmaps/counter", 200) >= 1,
    }[phase]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("phase", "signum"),
    [k for k in KEPT if k != ("saving", INT)],
    ids=[f"{p}-{s.name}" for p, s in KEPT if (p, s) != ("saving", INT)],
)
def test_configmap_state_after_a_signal_in_each_phase(kube, pipeline, tmp_path, phase, signum,
                                                      ledger):
    counter_step(pipeline, "configmap", big=BIG_KUBE)
    assert pipeline.run("run").returncode == 0
    ready, log = tmp_path / "ready", tmp_path / "intervals"
    env = {"BUMP_INTERVALS": str(log)}
    if phase == "running":  # the command writes its state, says so, and waits to be stopped
        env.update(BUMP_READY=str(ready), BUMP_HOLD="30")
    kube.reset_counts()
    kube.fail(latency=LATENCY)
    process = pipeline.popen("run", env=env)
    started = time.monotonic()
    try:
        assert wait_until(kube_trigger(kube, phase, ready), 30), f"{phase} never began"
        at = time.monotonic() - started
        chunk_gets = kube.count("GET", "/configmaps/counter-")
        posts = kube.count("POST", "/namespaces/default/configmaps")
        main_puts = kube.count("PUT", "/configmaps/counter", 200)
        code, _, err, took = _stop(process, signum, ledger, 30)
    finally:
        process.kill()
        for _, _, pid in intervals(log):
            kill_quietly(pid)  # a command the SIGKILLed runner left behind
    time.sleep(2 * LATENCY)  # a request the dead run had in flight still lands
    # The signal hit the phase it was meant for.
    if phase == "restoring":
        assert chunk_gets < 4 and posts == 0 and not intervals(log), (chunk_gets, posts)
    if phase == "saving":
        assert posts < 4 and main_puts == 0, (posts, main_puts)
    assert code == EXIT[signum], err
    assert "Traceback" not in err
    kept = which_state(stored(kube, tmp_path), range(1, 3), BIG_KUBE)
    assert kept == 1 + KEPT[(phase, signum)], f"signal at {at:.2f}s ({phase}); stderr:\n{err}"
    transitions = (kube.get_object("leases", "default", STATE_NAME)["spec"]
                   .get("leaseTransitions") or 0)
    if signum == KILL:
        assert lease_holder(kube) is not None  # the dead run still holds its Lease
    else:
        assert signum.name in err  # says what stopped it
        # Promptly: what was in flight (at most the rest of the save: 3 chunks, the main
        # object, 4 deletes and the Lease release, LATENCY each) and no more.
        assert took < 12 * LATENCY + 2, f"exited {took:.2f}s after {signum.name} ({phase})"
        assert lease_holder(kube) is None, "the Lease was not released"
    # The next run recovers: takes the Lease over once it has expired, and counts on.
    kube.fail()
    again = pipeline.run("run", "--lock-wait", "30")
    assert again.returncode == 0, again.stderr
    assert f"count is {kept + 1}" in again.stdout
    assert which_state(stored(kube, tmp_path), range(kept + 1, kept + 2), BIG_KUBE) == kept + 1
    assert lease_holder(kube) is None
    if signum == KILL:  # taken over from the dead holder once it expired, not broken
        spec = kube.get_object("leases", "default", STATE_NAME)["spec"]
        assert spec["leaseTransitions"] == transitions + 1


@pytest.mark.parametrize("store", ["configmap", "local"])
def test_sigterm_while_waiting_for_the_lock_exits_at_once_and_leaves_the_holder_alone(
        request, pipeline, tmp_path, store, ledger):
    """Another run holds the lock: SIGTERM ends the wait at once (143), nothing ran, and the
    other run's Lease or flock is untouched."""
    counter_step(pipeline, store)
    if store == "configmap":
        api = request.getfixturevalue("kube")
        hold_lease(api, STATE_NAME, "busy-pod/7", seconds=300)
        holder = None
    else:
        lock = pipeline.state_dir / "default" / f"{STATE_NAME}.lock"
        lock.parent.mkdir(parents=True)
        holder = open(lock, "a+b")  # noqa: SIM115 - held for the test
        fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        process = pipeline.popen("run", "--lock-wait", "60")
        before = wait_for_line(process, "waiting for")
        code, out, err, took = _stop(process, TERM, ledger, 20)
        err = before + err
    finally:
        if holder is not None:
            holder.close()
    assert code == 143, err
    assert took < 2, took
    assert "count is" not in out and "Traceback" not in err
    if store == "configmap":
        assert lease_holder(api) == "busy-pod/7"
        assert stored(api, tmp_path) is None
    else:
        assert stored_local(pipeline.state_dir) is None
        assert lock.read_bytes() == b""  # it never wrote itself in as the holder


def test_sigterm_while_the_lease_is_being_taken_releases_it_and_exits_143(kube, pipeline, ledger):
    """SIGTERM while the request that takes the Lease is in flight: the request completes, the
    runner stops right after (143, nothing ran) and releases the Lease, so the next run need
    not wait for it to expire. (A handler that raised there left the Lease held.)"""
    counter_step(pipeline, "configmap")
    kube.fail(latency=1.0, only=["create"])  # the Lease's create answers after a second
    process = pipeline.popen("run", "--lock-wait", "60")
    try:
        assert wait_until(lambda: kube.count("GET", "/leases/") >= 1, 30), "no Lease read"
        time.sleep(0.3)  # the create follows the read at once: now it is in flight
        assert kube.count("POST", "/leases") == 0
        code, out, err, took = _stop(process, TERM, ledger, 20)
    finally:
        process.kill()
    assert code == 143, err
    assert took < 3, took
    assert "count is" not in out and "Traceback" not in err
    # The create lands (a dead run's would still, after its latency) and the Lease is free.
    assert wait_until(lambda: kube.count("POST", "/leases") == 1, 5), "the Lease was not taken"
    assert lease_holder(kube) is None, "the Lease was not released"


def _manifest_generation(api) -> str:
    import json

    main = api.get_object("configmaps", "default", STATE_NAME)
    return json.loads(main["data"]["manifest"])["generation"]


@pytest.mark.slow
def test_chunks_left_by_a_killed_save_are_removed_by_the_next_save(kube, pipeline, tmp_path):
    counter_step(pipeline, "configmap", big=BIG_KUBE)
    assert pipeline.run("run").returncode == 0
    kube.reset_counts()
    kube.fail(latency=LATENCY)
    process = pipeline.popen("run")
    try:  # killed once the main object names the new chunks, before the old ones are deleted
        assert wait_until(lambda: kube.count("PUT", "/configmaps/counter", 200) >= 1, 30)
        process.kill()
        process.communicate(timeout=10)
    finally:
        process.kill()
    kube.fail()
    assert which_state(stored(kube, tmp_path), range(1, 3), BIG_KUBE) == 2
    for name, obj in kube.objects("configmaps", "default").items():  # all findable by label
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "kratix-step-runner", name
        assert name == STATE_NAME or labels["runner.kratix.dev/chunk-of"] == STATE_NAME
    again = pipeline.run("run", "--lock-wait", "30")
    assert again.returncode == 0, again.stderr
    generation = _manifest_generation(kube)
    left = [n for n in kube.objects("configmaps", "default") if n != STATE_NAME]
    assert all(f"-{generation}-" in n for n in left), f"orphaned chunks: {left}"


# -- the local store ----------------------------------------------------------------------------


def local_trigger(pipeline, process, phase: str, ready: Path):
    folder = pipeline.state_dir / "default" / STATE_NAME
    lock = pipeline.state_dir / "default" / f"{STATE_NAME}.lock"

    def locked() -> bool:  # the lock is taken just before the restore begins
        with contextlib.suppress(OSError):
            return lock.read_text() == f"pid {process.pid}"
        return False

    return {
        "restoring": locked,
        "running": ready.exists,
        "saving": lambda: any(folder.glob(".g-*.tmp")),
    }[phase]


LOCAL_CASES = [
    ("restoring", TERM), ("restoring", KILL), ("running", TERM), ("running", KILL),
    ("saving", TERM), ("saving", INT), ("saving", KILL),
]


@pytest.mark.slow
@pytest.mark.parametrize(("phase", "signum"), LOCAL_CASES,
                         ids=[f"{p}-{s.name}" for p, s in LOCAL_CASES])
def test_local_state_after_a_signal_in_each_phase(pipeline, tmp_path, phase, signum, ledger):
    counter_step(pipeline, "local", big=BIG_LOCAL)
    assert pipeline.run("run").returncode == 0
    old = 1
    for attempt in range(5):  # restoring lasts ~40 ms: a signal may land just after it
        ready, log = tmp_path / f"ready{attempt}", tmp_path / f"intervals{attempt}"
        env = {"BUMP_INTERVALS": str(log)}
        if phase == "running":
            env.update(BUMP_READY=str(ready), BUMP_HOLD="30")
        process = pipeline.popen("run", env=env)
        try:
            assert wait_until(local_trigger(pipeline, process, phase, ready), 30, 0.001)
            code, _, err, took = _stop(process, signum, ledger, 30)
        finally:
            process.kill()
            for _, _, pid in intervals(log):
                kill_quietly(pid)
        kept = which_state(stored_local(pipeline.state_dir), range(old, old + 2), BIG_LOCAL)
        if phase != "restoring" or not intervals(log):
            break
        old = kept  # the command had started: not the phase we meant; again
    else:
        pytest.fail("the signal never landed while restoring")
    assert code == EXIT[signum], err
    assert "Traceback" not in err
    if (phase, signum) == ("saving", KILL):
        assert kept in (old, old + 1)  # the rename that commits may just have happened
    else:
        assert kept == old + KEPT[(phase, signum)], err
    if signum != KILL:
        assert signum.name in err  # says what stopped it
        assert took < 3, f"exited {took:.2f}s after {signum.name} ({phase})"
    again = pipeline.run("run")
    assert again.returncode == 0, again.stderr
    assert f"count is {kept + 1}" in again.stdout
    assert which_state(stored_local(pipeline.state_dir), range(kept + 1, kept + 2),
                       BIG_LOCAL) == kept + 1


# -- SIGKILL at measured offsets ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("store", ["configmap", "local"])
def test_sigkill_at_measured_offsets_keeps_old_or_new_and_recovers(request, pipeline, tmp_path,
                                                                   store, ledger):
    """Measure one run, then SIGKILL runs at fixed fractions of that duration: each time the
    stored state is exactly n or n + 1, and the next run counts on from it."""
    if store == "configmap":
        api = request.getfixturevalue("kube")
        big, read = BIG_KUBE, (lambda: stored(api, tmp_path))
    else:
        api, big, read = None, BIG_LOCAL, (lambda: stored_local(pipeline.state_dir))
    counter_step(pipeline, store, big=big)
    assert pipeline.run("run").returncode == 0
    if api is not None:
        api.fail(latency=0.1)
    began = time.monotonic()
    assert pipeline.run("run").returncode == 0
    duration = time.monotonic() - began
    n, outcomes = 2, []
    for fraction in (0.15, 0.4, 0.6, 0.8, 0.95):
        log = tmp_path / f"intervals-{fraction}"
        process = pipeline.popen("run", env={"BUMP_INTERVALS": str(log)})
        time.sleep(duration * fraction)
        process.kill()
        ledger["signals"] += 1
        process.communicate(timeout=10)
        for _, _, pid in intervals(log):
            kill_quietly(pid)
        time.sleep(0.3)  # a request the dead run had in flight still lands (as on a real server)
        kept = which_state(read(), range(n, n + 2), big)
        outcomes.append((fraction, "new" if kept > n else "old"))
        if api is not None:
            api.fail()
        again = pipeline.run("run", "--lock-wait", "30")
        assert again.returncode == 0, again.stderr
        assert f"count is {kept + 1}" in again.stdout
        n = kept + 1
        if api is not None:
            api.fail(latency=0.1)
    assert which_state(read(), range(n, n + 1), big) == n
    print(f"{store}: run {duration:.2f}s; killed at", outcomes)


# -- a signal while the runner is blocked writing a log line ------------------------------------


def _full_pipe() -> tuple[int, int]:
    """A pipe (read end, write end) of one page, for the runner's stderr."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ
    return read_end, write_end


def _fill(read_end: int) -> None:
    """Fill the pipe to the last byte, through a non-blocking description of its own (the
    runner's stays blocking), so the runner's next write blocks."""
    filler = os.open(f"/proc/self/fd/{read_end}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        for size in (512, 1):
            with contextlib.suppress(BlockingIOError):
                while True:
                    os.write(filler, b"\0" * size)
    finally:
        os.close(filler)


def _in_write(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "1"  # write(2)
    return False


def _drain(read_end: int, into: list[bytes]) -> threading.Thread:
    def run() -> None:
        while chunk := os.read(read_end, 65536):
            into.append(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


BLOCKED_STEP = """
    workdir: ../work
    state: { store: local, files: [{ path: state.txt }], save: always }
    run:
      - script: |
          trap 'touch got-term' TERM
          touch ready
          while [ ! -e go ]; do sleep 0.01 || true; done  # TERM kills the sleep
          echo written-by-the-command > state.txt
"""


def _blocked_run(pipeline, ledger, first_signal: signal.Signals | None):
    """Run BLOCKED_STEP with stderr a pipe the test fills once the command is running; the
    command then writes its state and ends, and the runner blocks logging that it ended.
    Returns the process, the pipe's read end and a list the drained stderr goes to."""
    read_end, write_end = _full_pipe()
    ledger["runs"] += 1
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", *pipeline.args()], cwd=pipeline.work,
        env=pipeline.env, stdout=subprocess.DEVNULL, stderr=write_end,
    )
    os.close(write_end)
    assert wait_until((pipeline.work / "ready").exists, 20)
    if first_signal is not None:
        process.send_signal(first_signal)  # the command traps it and carries on
        assert wait_until((pipeline.work / "got-term").exists, 10)
        time.sleep(0.2)
    _fill(read_end)
    (pipeline.work / "go").touch()
    assert wait_until(lambda: _in_write(process.pid), 10), "the runner never blocked"
    time.sleep(0.2)
    return process, read_end


def _state_after(pipeline, process, read_end, signum) -> tuple[int, str, dict | None, float]:
    sent = time.monotonic()
    process.send_signal(signum)
    out: list[bytes] = []
    _drain(read_end, out)  # from now on the runner can write again
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    took = time.monotonic() - sent
    os.close(read_end)
    err = b"".join(out).replace(b"\0", b"").decode(errors="replace")
    from runner.state.base import StateRef
    from runner.state.local import LocalStore

    ref = StateRef("s", "my-app-s", "default")
    loaded = LocalStore(pipeline.state_dir).load(ref)
    return process.returncode, err, loaded.files if loaded else None, took


def test_sigterm_while_a_log_line_is_blocked_saves_and_exits_143(pipeline, ledger):
    """A SIGTERM while the main thread is blocked writing a log line (stderr a full pipe, as when
    the pod's log reader lags). Before af32392 the handler logged from inside that write:
    'RuntimeError: reentrant call inside BufferedWriter', a traceback, exit 1, state lost."""
    pipeline.step("s", BLOCKED_STEP)
    process, read_end = _blocked_run(pipeline, ledger, None)
    code, err, kept, took = _state_after(pipeline, process, read_end, TERM)
    assert "Traceback" not in err, err
    assert code == 143, err
    assert took < 5
    assert kept == {"state.txt": b"written-by-the-command\n"}, err


def test_a_second_signal_after_the_command_ended_still_saves(pipeline, ledger):
    """An impatient second signal that lands after the command ended, before the save. Before
    af32392 the handler raised Interrupted there and the state the command wrote was lost."""
    pipeline.step("s", BLOCKED_STEP)
    process, read_end = _blocked_run(pipeline, ledger, TERM)
    code, err, kept, _ = _state_after(pipeline, process, read_end, INT)
    assert "Traceback" not in err, err
    assert code in (130, 143), err
    assert kept == {"state.txt": b"written-by-the-command\n"}, err
