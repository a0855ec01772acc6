"""Nothing a run writes leaves its folders: `output:` never copies through a symbolic link (in
the workdir or in the output folder), manifests are written the same way, a request value in a
templated `workdir` stays one path component, and the local store's lock is never held twice."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from runner.base.errors import LockHeld
from runner.state.base import StateRef
from runner.state.local import LocalStore
from tests.conftest import DEFAULT_REQUEST, Pipeline


def outside(pipeline: Pipeline) -> Path:
    """A folder outside the workdir and the output folder, holding a file someone cares about."""
    folder = pipeline.root / "elsewhere"
    folder.mkdir()
    (folder / "victim.yaml").write_text("precious\n")
    return folder


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


MANIFESTS = """
    workdir: ../work
    run:
      - script: |
          mkdir -p manifests/db
          echo "kind: Namespace" > manifests/ns.yaml
          echo "kind: Secret" > manifests/db/victim.yaml
    output:
      - {from: manifests/, to: app/}
"""


# -- output: the destination ---------------------------------------------------------------


def test_output_refuses_a_symlink_below_the_target_folder(pipeline):
    away = outside(pipeline)
    (pipeline.output / "app").mkdir()
    (pipeline.output / "app" / "db").symlink_to(away)
    pipeline.step("out", MANIFESTS)
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert (
        f"spec.output[0].to: output target app/: {pipeline.output / 'app' / 'db'} is a symbolic "
        f"link (to {away})" in result.stderr
    )
    assert (away / "victim.yaml").read_text() == "precious\n"
    assert files_under(away) == ["victim.yaml"]
    assert files_under(pipeline.output) == ["app", "app/db"]  # nothing copied at all
    assert (pipeline.work / "manifests" / "ns.yaml").exists()  # the commands ran


def test_output_refuses_a_symlink_at_the_target_file(pipeline):
    away = outside(pipeline)
    (pipeline.output / "ns.yaml").symlink_to(away / "victim.yaml")
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo "kind: Namespace" > ns.yaml']
        output:
          - {from: ns.yaml}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert f"{pipeline.output / 'ns.yaml'} is a symbolic link" in result.stderr
    assert (away / "victim.yaml").read_text() == "precious\n"
    assert (pipeline.output / "ns.yaml").is_symlink()  # left as it was


def test_output_refuses_a_symlink_on_the_way_to_the_target_even_one_that_stays_inside(pipeline):
    (pipeline.output / "real").mkdir()
    (pipeline.output / "app").symlink_to("real")
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo "kind: Namespace" > ns.yaml']
        output:
          - {from: ns.yaml, to: app/deep/ns.yaml}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert f"output target app/deep/ns.yaml: {pipeline.output / 'app'} is a symbolic link" in (
        result.stderr
    )
    assert files_under(pipeline.output) == ["app", "real"]


def test_a_symlink_a_command_puts_in_the_output_folder_does_not_let_output_out(pipeline):
    """The commands unpack something that holds a link into the output folder themselves."""
    away = outside(pipeline)
    pipeline.step(
        "out",
        f"""
        workdir: ../work
        run:
          - script: |
              mkdir -p manifests/db "$KRATIX_OUTPUT_DIR/app"
              echo "kind: Secret" > manifests/db/victim.yaml
              ln -s {away} "$KRATIX_OUTPUT_DIR/app/db"
        output:
          - {{from: manifests/, to: app/}}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "is a symbolic link" in result.stderr
    assert (away / "victim.yaml").read_text() == "precious\n"


# -- output: the source --------------------------------------------------------------------


def test_output_refuses_a_symlink_in_the_source_that_leads_out_of_the_workdir(pipeline):
    away = outside(pipeline)
    pipeline.step(
        "out",
        f"""
        workdir: ../work
        run:
          - script: |
              mkdir -p manifests
              echo "kind: Namespace" > manifests/ns.yaml
              ln -s {away / "victim.yaml"} manifests/stolen.yaml
        output:
          - {{from: manifests/, to: app/}}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert (
        f"spec.output[0].from: output manifests/: {pipeline.work / 'manifests' / 'stolen.yaml'} "
        f"is a symbolic link (to {away / 'victim.yaml'})" in result.stderr
    )
    assert files_under(pipeline.output) == []  # not even ns.yaml: nothing is copied
    assert "precious" not in result.stderr + result.stdout


def test_output_refuses_a_from_that_is_itself_a_symlink(pipeline):
    away = outside(pipeline)
    pipeline.step(
        "out",
        f"""
        workdir: ../work
        run:
          - [ln, -s, {away / "victim.yaml"}, ns.yaml]
        output:
          - {{from: ns.yaml, to: app/}}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert f"{pipeline.work / 'ns.yaml'} is a symbolic link" in result.stderr
    assert files_under(pipeline.output) == []


def test_output_refuses_a_symlink_in_the_source_that_stays_inside_the_workdir(pipeline):
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - script: |
              mkdir -p manifests
              echo "kind: Namespace" > ns.yaml
              ln -s ../ns.yaml manifests/ns.yaml
        output:
          - {from: manifests/, to: app/}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert f"{pipeline.work / 'manifests' / 'ns.yaml'} is a symbolic link (to ../ns.yaml)" in (
        result.stderr
    )
    assert "copy the file it points to" in result.stderr  # the hint
    assert files_under(pipeline.output) == []


def test_output_refuses_a_fifo_in_the_source_instead_of_hanging(pipeline):
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - script: mkdir -p manifests && mkfifo manifests/pipe
        output:
          - {from: manifests/, to: app/}
        """,
    )
    result = pipeline.run("run", timeout=20)
    assert result.returncode == 1, result.stderr
    assert f"{pipeline.work / 'manifests' / 'pipe'} is not a regular file" in result.stderr


# -- output: what still works --------------------------------------------------------------


def test_output_copies_folders_and_files_into_the_output_folder(pipeline):
    (pipeline.output / "app").mkdir()
    (pipeline.output / "app" / "ns.yaml").write_text("old\n")
    (pipeline.output / "app" / "kept.yaml").write_text("kept\n")
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - script: |
              mkdir -p manifests/db
              echo "kind: Namespace" > manifests/ns.yaml
              echo "kind: Secret" > manifests/db/s.yaml
              echo '#!/bin/sh' > run.sh && chmod 755 run.sh
              echo one > one.yaml
        output:
          - {from: manifests/, to: app/}
          - {from: run.sh, to: bin/}
          - {from: one.yaml, to: deep/er/renamed.yaml}
          - {from: one.yaml}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    out = pipeline.output
    assert files_under(out) == [
        "app", "app/db", "app/db/s.yaml", "app/kept.yaml", "app/ns.yaml",
        "bin", "bin/run.sh", "deep", "deep/er", "deep/er/renamed.yaml", "one.yaml",
    ]  # fmt: skip
    assert (out / "app" / "ns.yaml").read_text() == "kind: Namespace\n"  # replaced
    assert (out / "app" / "kept.yaml").read_text() == "kept\n"  # merged, not emptied
    assert stat.S_IMODE((out / "bin" / "run.sh").stat().st_mode) == 0o755
    assert (out / "deep" / "er" / "renamed.yaml").read_text() == "one\n"


def test_output_into_an_existing_folder_without_a_trailing_slash(pipeline):
    (pipeline.output / "app").mkdir()
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo one > one.yaml']
        output:
          - {from: one.yaml, to: app}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.output / "app" / "one.yaml").read_text() == "one\n"


def test_an_output_folder_that_is_a_symlink_itself_is_used(pipeline):
    """The output folder is Kratix's (a mount, or --output): trusted as given."""
    real = pipeline.root / "real-output"
    real.mkdir()
    pipeline.step(
        "out",
        """
        workdir: ../work
        run:
          - [sh, -c, 'echo one > one.yaml']
        output:
          - {from: one.yaml, to: app/}
        """,
    )
    linked = pipeline.root / "linked-output"
    linked.symlink_to(real)
    command = ["run", "--steps-dir", str(pipeline.steps), "--input", str(pipeline.input)]
    command += ["--output", str(linked), "--metadata", str(pipeline.metadata)]
    result = subprocess.run(
        [sys.executable, "-m", "runner", *command],
        cwd=pipeline.work, env=pipeline.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (real / "app" / "one.yaml").read_text() == "one\n"


# -- manifests ---------------------------------------------------------------------------------


def test_a_manifest_is_not_written_through_a_symlink_in_the_output_folder(pipeline):
    """A command left `app` as a link: even one that stays inside, the manifest is refused."""
    pipeline.step(
        "m",
        """
        workdir: ../work
        run:
          - script: |
              mkdir -p "$KRATIX_OUTPUT_DIR/real"
              ln -s real "$KRATIX_OUTPUT_DIR/app"
        manifests:
          - path: app/ns.yaml
            document: {apiVersion: v1, kind: Namespace, metadata: {name: x}}
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "spec.manifests[0]" in result.stderr
    assert f"{pipeline.output / 'app'} is a symbolic link (to real)" in result.stderr
    assert files_under(pipeline.output) == ["app", "real"]


def test_a_manifest_is_not_written_through_a_link_at_its_temporary_name(pipeline):
    """The temporary file beside the manifest is made new (O_EXCL): a link placed at a name it
    might use is never followed."""
    away = outside(pipeline)
    # The old name was `.NAME.<runner pid>.tmp`, and the runner is the commands' parent.
    pipeline.step(
        "m",
        f"""
        workdir: ../work
        run:
          - script: ln -s {away / "victim.yaml"} "$KRATIX_OUTPUT_DIR/.ns.yaml.$PPID.tmp"
        manifests:
          - path: ns.yaml
            document: {{apiVersion: v1, kind: Namespace, metadata: {{name: x}}}}
        """,
    )
    result = pipeline.run("run")
    assert (away / "victim.yaml").read_text() == "precious\n"
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((pipeline.output / "ns.yaml").read_text())["kind"] == "Namespace"


# -- workdir templates -----------------------------------------------------------------------


def modules_step(pipeline: Pipeline, workdir: str, field: str = "step") -> None:
    """A step whose workdir a request value picks, with a local state file in it."""
    (pipeline.root / "modules" / "small").mkdir(parents=True)
    pipeline.step("first", "workdir: ../work\nrun: [[touch, first-ran]]", file="00-first.yaml")
    if field == "step":
        where = f'workdir: "{workdir}"\nrun:\n  - [touch, ran-here]'
    else:
        where = f'workdir: ../modules\nrun:\n  - {{argv: [touch, ran-here], workdir: "{workdir}"}}'
    body = (
        "inputs:\n  size: {query: .spec.size}\n"
        "state: {store: local, name: mod, files: [{path: victim.yaml}]}\n" + where
    )
    pipeline.step("module", body, file="10-module.yaml")


def request_size(pipeline: Pipeline, size: str) -> None:
    pipeline.request({**DEFAULT_REQUEST, "spec": {"size": size}})


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("../../elsewhere", 'holds "/"'),
        ("..", 'is ".."'),
        (".", 'is "."'),
        ("small/../../../elsewhere", 'holds "/"'),
        ("/abs/path", 'holds "/"'),
        ("a\0b", "holds a NUL character"),
    ],
    ids=["climbs", "dotdot", "dot", "hidden-climb", "absolute", "nul"],
)
def test_a_request_value_in_the_workdir_must_be_one_path_component(pipeline, size, problem):
    away = outside(pipeline)
    modules_step(pipeline, "../modules/${{ inputs.size }}")
    request_size(pipeline, size)
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert (
        f'spec.workdir: ${{{{ inputs.size }}}} in "../modules/${{{{ inputs.size }}}}" renders '
        f"a value that {problem}" in result.stderr
    )
    assert "a templated value in a path must be one path component" in result.stderr
    assert (away / "victim.yaml").read_text() == "precious\n"
    assert files_under(away) == ["victim.yaml"]
    assert not (pipeline.work / "first-ran").exists()  # before any command of any step
    assert not (pipeline.root / "modules" / "ran-here").exists()


def test_a_request_value_in_a_commands_workdir_must_be_one_path_component(pipeline):
    away = outside(pipeline)
    modules_step(pipeline, "${{ inputs.size }}", field="command")
    request_size(pipeline, "../elsewhere")
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert 'spec.run[0].workdir: ${{ inputs.size }} in "${{ inputs.size }}" renders a value' in (
        result.stderr
    )
    assert files_under(away) == ["victim.yaml"]
    assert not (pipeline.work / "first-ran").exists()


def test_a_request_value_that_is_one_component_picks_the_workdir(pipeline):
    modules_step(pipeline, "../modules/${{ inputs.size }}")
    request_size(pipeline, "small")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.root / "modules" / "small" / "ran-here").exists()


def test_literal_dotdot_in_a_templated_workdir_is_fine(pipeline):
    (pipeline.root / "modules" / "x-small").mkdir(parents=True)
    pipeline.step(
        "module",
        """
        inputs:
          size: {query: .spec.size}
        workdir: "../modules/../modules/x-${{ inputs.size }}"
        run: [[touch, ran-here]]
        """,
    )
    request_size(pipeline, "small")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.root / "modules" / "x-small" / "ran-here").exists()


# -- the local store's lock ---------------------------------------------------------------------


SHARED = """
    on: {action: [configure, delete]}
    state: {store: local, name: shared, files: [{path: s.txt}], onDelete: remove}
    workdir: ../work
    run:
      - script: |
          touch "$TAG-in"
          i=0
          while [ ! -e "$TAG-go" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i + 1)); done
"""


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_removing_a_local_state_never_lets_two_runs_hold_its_lock(pipeline):
    """A deletes the state while B waits for its lock: once B has it, nobody else may."""
    from tests.reliability.helpers import wait_for_line

    pipeline.step("shared", SHARED)
    work = pipeline.work
    a = pipeline.popen("run", env={"TAG": "a", "KRATIX_WORKFLOW_ACTION": "delete"})
    b = None
    try:
        wait_for(lambda: (work / "a-in").exists())  # A holds the lock
        b = pipeline.popen("run", "--lock-wait", "60", env={"TAG": "b"})
        wait_for_line(b, "waiting for")  # B has the lock file open and waits
        (work / "a-go").touch()  # A removes the state and ends
        assert a.wait(30) == 0, a.communicate()[1]
        wait_for(lambda: (work / "b-in").exists())  # B holds the lock
        store = LocalStore(pipeline.state_dir)
        with pytest.raises(LockHeld), store.lock(StateRef("shared", "shared", "default"), 0):
            pass
        (work / "b-go").touch()
        assert b.wait(30) == 0, b.communicate()[1]
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    # The lock is free again, and usable.
    with LocalStore(pipeline.state_dir).lock(StateRef("shared", "shared", "default"), 0):
        pass


def test_a_waiter_whose_lock_file_was_deleted_locks_the_file_there_now(tmp_path):
    """Someone deletes NAME.lock by hand while B waits on it: once the holder lets go, B must
    lock the file at the path (the one a newcomer sees), not the deleted one."""
    import threading

    store = LocalStore(tmp_path)
    ref = StateRef("s", "shared", "default")
    lock_file = tmp_path / "default" / "shared.lock"
    holding, release, b_waits, b_has_it, b_done = (threading.Event() for _ in range(5))

    class Notices:  # what the store tells a Logger while it waits
        def info(self, *args: object, **fields: object) -> None:
            b_waits.set()

    def hold() -> None:
        with store.lock(ref, 5):
            holding.set()
            release.wait(10)

    def wait_then_hold() -> None:
        with store.lock(ref, 10, Notices()):  # type: ignore[arg-type]
            b_has_it.set()
            b_done.wait(10)

    a = threading.Thread(target=hold)
    a.start()
    assert holding.wait(5)
    b = threading.Thread(target=wait_then_hold)
    b.start()
    try:
        assert b_waits.wait(5)  # B has the file open and waits
        lock_file.unlink()
        release.set()
        assert b_has_it.wait(5)
        with pytest.raises(LockHeld), store.lock(ref, 0):
            pass
        assert lock_file.exists()
    finally:
        release.set()
        b_done.set()
        a.join()
        b.join()
