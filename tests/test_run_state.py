"""The local state store through `runner run`: restore, save, failure policy, atomicity, locking."""

from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest
import yaml

from runner.base.errors import StoreError
from runner.state.base import StateRef
from runner.state.local import LocalStore
from tests.kubeapi import FakeKubeAPI

COUNTER = """
    state:
      store: local
      name: counter
      files: [{path: count.txt, key: count}]
      save: {save}
    workdir: ../work
    run:
      - script: |
          n=$(cat count.txt 2>/dev/null || echo 0)
          echo $((n + 1)) > count.txt
          echo "count is $((n + 1))"
          {then}
"""


def counter_step(pipeline, save: str = "always", then: str = "true") -> None:
    pipeline.step("counter", COUNTER.replace("{save}", save).replace("{then}", then))


def stored(pipeline) -> dict[str, bytes] | None:
    loaded = LocalStore(pipeline.state_dir).load(StateRef("counter", "counter", "default"))
    return None if loaded is None else loaded.files


@pytest.mark.slow
def test_state_is_restored_before_and_saved_after_the_commands(pipeline):
    counter_step(pipeline)
    for expected in (1, 2, 3):
        result = pipeline.run("run")
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
    assert stored(pipeline) == {"count": b"3\n"}


def test_stale_file_in_workdir_is_not_used_when_store_is_empty(pipeline):
    counter_step(pipeline)
    (pipeline.work / "count.txt").write_text("41\n")
    result = pipeline.run("run")
    assert "count is 1" in result.stdout


def test_state_saved_when_command_fails_and_save_is_always(pipeline):
    counter_step(pipeline, "always", "exit 7")
    result = pipeline.run("run")
    assert result.returncode == 1
    assert "exited with 7" in result.stderr
    assert stored(pipeline) == {"count": b"1\n"}


def test_state_not_saved_when_command_fails_and_save_is_on_success(pipeline):
    counter_step(pipeline, "on-success", "exit 7")
    assert pipeline.run("run").returncode == 1
    assert stored(pipeline) is None


def test_state_saved_when_step_times_out(pipeline):
    pipeline.step(
        "counter",
        """
        state:
          store: local
          name: counter
          files: [{path: count.txt, key: count}]
        workdir: ../work
        timeout: 1s
        run:
          - script: |
              echo 1 > count.txt
              sleep 30
    """,
    )
    started = time.monotonic()
    result = pipeline.run("run")
    assert result.returncode == 1
    assert time.monotonic() - started < 15
    assert "timed out" in result.stderr
    assert stored(pipeline) == {"count": b"1\n"}


def test_unchanged_state_is_not_written_again(pipeline):
    pipeline.step(
        "counter",
        """
        state: {store: local, name: counter, files: [{path: count.txt, key: count}]}
        workdir: ../work
        run:
          - script: test -f count.txt || echo 1 > count.txt
    """,
    )
    assert pipeline.run("run").returncode == 0
    second = pipeline.run("run")
    assert "state unchanged" in second.stderr
    assert stored(pipeline) == {"count": b"1\n"}


def test_state_carries_labels_naming_the_step_and_object(pipeline):
    counter_step(pipeline)
    pipeline.run("run")
    labels_file = next((pipeline.state_dir / "default" / "counter").glob("g-*/labels.json"))
    labels = json.loads(labels_file.read_text())
    assert labels == {
        "app.kubernetes.io/managed-by": "kratix-step-runner",
        "runner.kratix.dev/step": "counter",
        "runner.kratix.dev/object-name": "my-app",
        "runner.kratix.dev/object-namespace": "default",
    }


@pytest.mark.slow
def test_concurrent_runs_on_one_state_are_serialised_with_no_lost_update(pipeline):
    counter_step(pipeline, then="sleep 0.2")
    procs = [pipeline.popen("run") for _ in range(5)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert stored(pipeline) == {"count": b"5\n"}


def test_lock_held_past_the_wait_asks_kratix_to_retry_and_exits_0(pipeline):
    counter_step(pipeline)
    pipeline.step("after", "workdir: ../work\nrun: [[touch, after-ran]]", file="zz-after.yaml")
    store = LocalStore(pipeline.state_dir)
    ref = StateRef("counter", "counter", "default")
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.lock(ref, 5):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        entered.wait(5)
        result = pipeline.run("run", "--lock-wait", "0.5")
    finally:
        release.set()
        holder.join()
    # Kratix reads workflow-control.yaml only after every container exited 0.
    assert result.returncode == 0, result.stderr
    control = yaml.safe_load((pipeline.metadata / "workflow-control.yaml").read_text())
    assert set(control) == {"retryAfter", "message"}
    assert re.fullmatch(r"[0-9]+s", control["retryAfter"])
    assert "step counter:" in control["message"] and "is locked by" in control["message"]
    assert f"pid {os.getpid()}" in control["message"]  # the holder
    assert stored(pipeline) is None
    assert not (pipeline.work / "after-ran").exists()  # no further step runs


def test_failed_save_keeps_the_previous_state_whole(tmp_path, monkeypatch):
    """A save that fails half way (disk full at the last rename) leaves the old state intact."""
    import errno
    import os

    store = LocalStore(tmp_path)
    ref = StateRef("counter", "counter", "default")
    store.save(ref, {"a": b"old-a", "b": b"old-b"})
    real_replace = os.replace

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(StoreError) as failed:
        store.save(ref, {"a": b"new-a", "b": b"new-b"})
    assert "No space left on device" in str(failed.value)
    assert "previous state is kept" in str(failed.value)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.load(ref).files == {"a": b"old-a", "b": b"old-b"}
    assert not list((tmp_path / "default" / "counter").glob(".*.tmp"))


def test_delete_step_with_on_delete_remove_removes_the_state(pipeline):
    counter_step(pipeline)
    pipeline.step(
        "forget",
        """
        on: {action: delete}
        state: {store: local, name: counter, files: [{path: count.txt, key: count}], onDelete: remove}
        workdir: ../work
        run:
          - [cat, count.txt]
    """,
    )
    assert pipeline.run("run").returncode == 0
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert "removed state" in result.stderr
    assert stored(pipeline) is None


def test_a_step_for_both_actions_removes_its_state_only_in_the_delete_workflow(pipeline):
    pipeline.step(
        "counter",
        """
        on: {action: [configure, delete]}
        state: {store: local, name: counter, files: [{path: count.txt, key: count}], onDelete: remove}
        workdir: ../work
        run:
          - [sh, -c, 'echo 1 > count.txt']
    """,
    )
    configured = pipeline.run("run")
    assert configured.returncode == 0, configured.stderr
    assert "removed state" not in configured.stderr
    assert stored(pipeline) == {"count": b"1\n"}  # configure saves it, never removes it
    deleted = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert deleted.returncode == 0, deleted.stderr
    assert stored(pipeline) is None


TWO_FILES = """
    state:
      store: {store}
      name: two
      files: [{path: a.txt, key: a}, {path: b.txt, key: b}]
    workdir: ../work
    run:
      - script: |
          {script}
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "configmap"])
def test_a_restored_file_the_commands_removed_keeps_its_stored_value(pipeline, tmp_path, store):
    """The engine keeps only a digest of the restored state; a removed file is read back."""
    api = None
    if store == "configmap":
        api = FakeKubeAPI().start()
        pipeline.env.pop("RUNNER_STATE_STORE")
        pipeline.env["KUBECONFIG"] = str(api.write_kubeconfig(tmp_path / "kc"))

    def run(script: str):
        pipeline.step("two", TWO_FILES.replace("{store}", store).replace("{script}", script))
        result = pipeline.run("run")
        assert result.returncode == 0, result.stderr
        return result

    try:
        run("echo A1 > a.txt; echo B1 > b.txt")
        assert "A1" in run("cat a.txt b.txt; rm a.txt; echo B2 > b.txt").stdout
        again = run("cat a.txt b.txt")
        assert "A1\nB2" in again.stdout and "state unchanged" in again.stderr
        assert "state unchanged" in run("rm a.txt").stderr
    finally:
        if api:
            api.stop()


def test_without_the_lock_racing_local_runs_fail_with_exit_3_and_lose_nothing(pipeline):
    """lock: false: the runs overlap, but a save never replaces a state saved since it was read
    (the save checks the version restored): the losers exit 3, every success is counted."""
    pipeline.step("counter", """
        state: {store: local, name: counter, lock: false, files: [{path: count.txt, key: count}]}
        workdir: ../work
        copyWorkdir: true
        run:
          - script: |
              n=$(cat count.txt 2>/dev/null || echo 0)
              sleep 1.5
              echo $((n + 1)) > count.txt
    """)  # fmt: skip
    procs = [pipeline.popen("run") for _ in range(4)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert set(codes) <= {0, 3}, [err[-800:] for _, err in outcomes]
    assert 3 in codes  # they did race
    for code, (_, err) in zip(codes, outcomes, strict=True):
        if code == 3:
            assert "was changed by another run since this run read it" in err, err
    assert stored(pipeline) == {"count": f"{codes.count(0)}\n".encode()}
