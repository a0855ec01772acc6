"""A full disk or an unusable folder while restoring, saving, copying the workdir or writing
results: a clear error with a documented exit code, never a traceback, and the stored state
whole (the old one) - nothing stored half way.

Tests run as root, so chmod binds nothing and there is no tmpfs to fill. Instead:
`RLIMIT_FSIZE` (set in the runner's child before exec) makes any write past the limit fail
with EFBIG - Python ignores SIGXFSZ, so the runner sees an OSError, and a command that must
write more raises its own soft limit back to the hard one; a symlink to `/dev/full` makes a
write fail with ENOSPC; and a folder whose path runs through a regular file fails with
ENOTDIR or EEXIST.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys

import pytest

from runner.state.base import StateRef
from runner.state.local import LocalStore
from tests.reliability.helpers import (
    BIG_KUBE,
    counter_step,
    state_number,
    stored,
    stored_local,
)

LIMIT = 1_000_000  # bytes any one file of the runner may reach
REF = StateRef("s", "my-app-s", "default")


def run_limited(pipeline, limit: int = LIMIT, env=None, ledger=None):
    """`runner run` with RLIMIT_FSIZE = limit (the hard limit stays unlimited)."""

    def limit_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    if ledger is not None:
        ledger["runs"] += 1
    return subprocess.run(
        [sys.executable, "-m", "runner", "run", *pipeline.args()], cwd=pipeline.work,
        env={**pipeline.env, **(env or {})}, capture_output=True, text=True, timeout=60,
        preexec_fn=limit_writes,
    )


def clear_error(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (1, 3), result.stderr
    # The reported error: a line of its own, not one of a step's log lines ("runner: [STEP] ...").
    reported = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("runner: ") and not line.startswith("runner: [")
    ]
    assert reported, result.stderr


WRITER = """
    workdir: ../work
    state: {store: local, files: [{path: data.bin}]}
    run:
      - [%s, -c, "import os, resource as r; r.setrlimit(r.RLIMIT_FSIZE, (r.RLIM_INFINITY,) * 2); open('data.bin', 'wb').write(os.urandom(int(os.environ['SIZE'])))"]
""" % sys.executable  # noqa: UP031 - the YAML has braces


def test_a_save_past_the_disk_limit_exits_3_and_keeps_the_previous_state(pipeline, ledger):
    pipeline.step("s", WRITER)
    assert pipeline.run("run", env={"SIZE": "100"}).returncode == 0
    before = LocalStore(pipeline.state_dir).load(REF).files
    folder = pipeline.state_dir / "default" / "my-app-s"
    listing = sorted(p.name for p in folder.iterdir())
    # The command lifts its own limit and writes 3 MB; the runner's copy of it cannot.
    result = run_limited(pipeline, env={"SIZE": "3000000"}, ledger=ledger)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 3, result.stderr
    assert "cannot save state" in result.stderr and "File too large" in result.stderr
    assert "previous state is kept" in result.stderr
    assert LocalStore(pipeline.state_dir).load(REF).files == before
    assert sorted(p.name for p in folder.iterdir()) == listing  # no half-written generation
    again = pipeline.run("run", env={"SIZE": "50"})
    assert again.returncode == 0, again.stderr
    assert len(LocalStore(pipeline.state_dir).load(REF).files["data.bin"]) == 50


def test_a_state_folder_under_a_regular_file_is_a_clear_store_error(pipeline):
    (pipeline.root / "blocker").write_text("a file, not a folder")
    pipeline.step("s", WRITER)
    result = pipeline.run("run", "--state-store", f"local:{pipeline.root / 'blocker' / 'state'}",
                          env={"SIZE": "10"})
    assert result.returncode == 3, result.stderr
    assert "Not a directory" in result.stderr
    assert not (pipeline.work / "data.bin").exists()  # nothing ran


def test_a_workdir_that_is_a_file_is_invalid_and_nothing_runs(pipeline):
    (pipeline.root / "not-a-dir").write_text("")
    pipeline.step("s", """
        workdir: ../not-a-dir
        run: [[touch, ran]]
    """)
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "not-a-dir" in result.stderr and "spec.workdir" in result.stderr


@pytest.mark.parametrize("store", ["local", "configmap"])
def test_restoring_into_a_full_disk_is_a_clear_error(request, pipeline, tmp_path, store):
    if store == "configmap":
        request.getfixturevalue("kube")
    pipeline.step("s", f"""
        workdir: ../work
        state: {{store: {store}, name: counter, files: [{{path: state.txt, key: state}}]}}
        run: [[sh, -c, "echo v$(cat state.txt 2>/dev/null) > state.txt; touch ran"]]
    """)
    assert pipeline.run("run").returncode == 0
    (pipeline.work / "state.txt").unlink()
    (pipeline.work / "ran").unlink()
    os.symlink("/dev/full", pipeline.work / "state.txt")  # every write: ENOSPC
    result = pipeline.run("run", check_traceback=False)
    clear_error(result)
    assert "No space left on device" in result.stderr and "state.txt" in result.stderr
    assert not (pipeline.work / "ran").exists()


@pytest.mark.parametrize("store", ["local", "configmap"])
def test_restoring_past_the_file_size_limit_is_a_clear_error(request, pipeline, tmp_path, store,
                                                             ledger):
    api = request.getfixturevalue("kube") if store == "configmap" else None
    counter_step(pipeline, store, big=BIG_KUBE * 2)
    assert pipeline.run("run").returncode == 0
    result = run_limited(pipeline, ledger=ledger)
    kept = stored(api, tmp_path) if api else stored_local(pipeline.state_dir)
    assert state_number(kept, BIG_KUBE * 2) == 1  # untouched
    clear_error(result)
    assert "File too large" in result.stderr and "count is" not in result.stdout


def test_a_state_file_whose_folder_is_a_file_is_a_clear_error(pipeline):
    pipeline.step("s", """
        workdir: ../work
        state: {store: local, files: [{path: sub/state.txt}]}
        run: [[sh, -c, "mkdir -p sub && echo v > sub/state.txt"]]
    """)
    assert pipeline.run("run").returncode == 0
    before = LocalStore(pipeline.state_dir).load(REF).files
    shutil.rmtree(pipeline.work / "sub")
    (pipeline.work / "sub").write_text("a file where the state's folder should be")
    result = pipeline.run("run", check_traceback=False)
    clear_error(result)
    assert "sub" in result.stderr
    assert LocalStore(pipeline.state_dir).load(REF).files == before


def test_copying_the_workdir_onto_a_full_disk_is_a_clear_error(pipeline, ledger):
    (pipeline.work / "module.bin").write_bytes(os.urandom(2 * LIMIT))
    pipeline.step("s", """
        workdir: ../work
        copyWorkdir: true
        run: [[touch, ran]]
    """)
    result = run_limited(pipeline, ledger=ledger)
    clear_error(result)
    assert "File too large" in result.stderr


def test_an_unusable_metadata_folder_is_a_clear_error_before_anything_runs(pipeline):
    pipeline.step("s", """
        workdir: ../work
        state: {store: local, files: [{path: state.txt}]}
        run: [[sh, -c, "echo done > state.txt"]]
        status: {message: ready}
    """)
    shutil.rmtree(pipeline.metadata)
    pipeline.metadata.write_text("a file where the metadata folder should be")
    result = pipeline.run("run", check_traceback=False)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert f"cannot create the metadata folder {pipeline.metadata}" in result.stderr
    assert not (pipeline.work / "state.txt").exists()
    assert LocalStore(pipeline.state_dir).load(REF) is None


def test_outputs_onto_a_full_disk_are_a_clear_error(pipeline, ledger):
    (pipeline.work / "out").mkdir()
    (pipeline.work / "out" / "big.yaml").write_bytes(b"#" * (2 * LIMIT))
    pipeline.step("s", """
        workdir: ../work
        run: [[true]]
        output: [{from: out/, to: app/}]
    """)
    result = run_limited(pipeline, ledger=ledger)
    clear_error(result)
    assert "File too large" in result.stderr
