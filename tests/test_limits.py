"""Big and hostile inputs end in their documented exit codes, with a message and no traceback:
values too large for a command's environment, YAML bombs in every file the runner reads,
durations and expressions that once crashed it."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.platform.exec_limits import MAX_ARG_STRLEN, too_big, total_limit
from tests.conftest import Pipeline, base_env

BIG = "x" * (200 * 1024)

# 342 bytes that a YAML loader without limits expands to 9**9 strings (1 GB of Python objects).
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + BOMB


def _request(pipeline: Pipeline, **spec: object) -> None:
    pipeline.request(
        {
            "apiVersion": "workshop.kratix.io/v1",
            "kind": "App",
            "metadata": {"name": "my-app", "namespace": "default"},
            "spec": spec,
        }
    )


def _peak_rss_kib(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, int]:
    """Run `command` under a small Python parent that reports its only child's peak RSS."""
    probe = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stderr, int(done.stdout.split()[-1])


# -- values too large for a command's environment ----------------------------------------------


def test_input_too_large_for_the_environment_is_not_exported_and_named_once(pipeline):
    _request(pipeline, big=BIG)
    pipeline.step(
        "big",
        """
        inputs:
          big: { query: .spec.big }
        run:
          - [python3, -c, "import json, os; json.dump(dict(os.environ), open('env.json', 'w'))"]
          - [python3, -c, "pass"]
        workdir: ../work
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    env = json.loads((pipeline.work / "env.json").read_text())
    assert "INPUT_BIG" not in env
    notes = [line for line in result.stderr.splitlines() if "INPUT_BIG" in line]
    assert len(notes) == 1, result.stderr
    assert '"inputs.big" (INPUT_BIG) is too large for an environment variable' in notes[0]
    assert "not exported" in notes[0]
    assert BIG[:1000] not in result.stderr


def test_plan_lists_an_input_that_is_not_exported(pipeline):
    _request(pipeline, big=BIG)
    pipeline.step("big", "inputs:\n  big: { query: .spec.big }\nrun:\n  - [echo, hi]\n")
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["notExported"] == ["inputs.big"]
    assert "INPUT_BIG" not in plan["env"]


def test_env_template_over_the_limit_stops_the_run_before_anything_runs(pipeline):
    _request(pipeline, big=BIG)
    pipeline.step(
        "big",
        """
        inputs:
          big: { query: .spec.big }
        env:
          HUGE: "${{ inputs.big }}"
        run:
          - [touch, ran]
        workdir: ../work
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "spec.run[0]: the command is too large to start: env HUGE (200.0 KiB)" in result.stderr
    assert "128.0 KiB" in result.stderr
    assert "big.yaml:" in result.stderr
    assert not (pipeline.work / "ran").exists()
    assert "xxxxxxxx" not in result.stderr


def test_argv_over_the_limit_from_an_earlier_steps_output_fails_that_command(pipeline):
    # Known only once the first step has run: exit 1 for the command, not exit 2.
    (pipeline.work / "big.txt").write_text(BIG)
    pipeline.step(
        "make",
        """
        run:
          - [touch, made]
        outputs:
          big: { file: big.txt }
        workdir: ../work
        """,
    )
    pipeline.step(
        "use",
        """
        run:
          - [echo, "${{ steps.make.outputs.big }}"]
        workdir: ../work
        """,
    )
    result = pipeline.run("run", "make", "use")
    assert result.returncode == 1, result.stderr
    assert (pipeline.work / "made").exists()
    assert "cannot start echo: too large to start: argv[1] (200.0 KiB)" in result.stderr


def test_all_arguments_and_environment_together_are_held_to_the_stack_limit(pipeline):
    # With a 1 MiB stack Linux passes 256 KiB in all: three 100 KiB variables don't fit.
    pipeline.step(
        "many",
        """
        env:
          ONE: "${{ inputs.v }}"
          TWO: "${{ inputs.v }}"
          THREE: "${{ inputs.v }}"
        inputs:
          v: { query: .spec.v }
        run:
          - [touch, ran]
        workdir: ../work
        """,
    )
    _request(pipeline, v="y" * (100 * 1024))
    command = [sys.executable, "-m", "runner", "run", *pipeline.args()]

    def small_stack() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.RLIM_INFINITY))

    result = subprocess.run(
        command,
        cwd=pipeline.work,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_stack,
    )
    assert result.returncode == 2, result.stderr
    assert "arguments and environment take" in result.stderr
    assert "a quarter of the stack limit" in result.stderr
    for name in ("INPUT_V", "ONE", "TWO", "THREE"):
        assert f"env {name} (100.0 KiB)" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_too_big_names_items_by_size_and_never_their_values():
    assert too_big(["echo", "hi"], {"A": "b"}) is None
    assert too_big(["echo"], {"A": "v" * (MAX_ARG_STRLEN - 3)}) is None  # "A=" + value + NUL
    reason = too_big(["echo"], {"A": "v" * (MAX_ARG_STRLEN - 2), "B": "small"})
    assert reason is not None and "env A (128.0 KiB)" in reason and "vvv" not in reason
    many = {f"V{i}": "z" * 100_000 for i in range(total_limit() // 100_000 + 1)}
    reason = too_big(["echo"], many)
    assert reason is not None and "arguments and environment take" in reason


# -- YAML bombs in every file the runner reads -------------------------------------------------

OUTPUT_STEP = """
run:
  - [python3, -c, "import shutil; shutil.copy('{source}', 'out.yaml')"]
outputs:
  x: {{ file: out.yaml, query: . }}
workdir: ../work
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "out.yaml:6:8: document too large (aliases expand to more than 100000 nodes)"),
        ("&a [*a]\n", "out.yaml:1:5: recursive alias *a"),
        ("[" * 5000 + "]" * 5000, "out.yaml:1:101: nested too deeply (more than 100 levels)"),
        ("a: 1\na: 2\n", 'out.yaml:2:1: duplicate key "a"'),
    ],
    ids=["alias-bomb", "recursive-alias", "deep", "duplicate-key"],
)
def test_a_hostile_outputs_file_fails_the_step_in_bounded_memory(pipeline, text, message):
    (pipeline.work / "source.yaml").write_text(text)
    pipeline.step("out", OUTPUT_STEP.format(source="source.yaml"))
    code, stderr, peak = _peak_rss_kib(
        [sys.executable, "-m", "runner", "run", *pipeline.args()], pipeline.work, pipeline.env
    )
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert f'spec.outputs.x: output "x": {message}' in stderr
    assert peak < 150 * 1024, f"peak RSS {peak} KiB"


def test_a_status_file_value_with_an_alias_bomb_fails_the_step(pipeline):
    (pipeline.work / "source.yaml").write_text(BOMB)
    pipeline.step(
        "st",
        """
        run:
          - [python3, -c, "import shutil; shutil.copy('source.yaml', 'out.yaml')"]
        status:
          found: { file: out.yaml, query: .i }
        workdir: ../work
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "out.yaml:6:8: document too large (aliases expand" in result.stderr
    assert not (pipeline.metadata / "status.yaml").exists()


def test_a_request_with_an_alias_bomb_is_exit_2_in_bounded_memory(pipeline):
    pipeline.request("apiVersion: v1\nkind: App\nmetadata: {name: x}\n" + BOMB)
    pipeline.step("s", "run:\n  - [touch, ran]\nworkdir: ../work\n")
    code, stderr, peak = _peak_rss_kib(
        [sys.executable, "-m", "runner", "run", *pipeline.args()], pipeline.work, pipeline.env
    )
    assert code == 2, stderr
    assert "object.yaml:9:8: document too large (aliases expand" in stderr
    assert not (pipeline.work / "ran").exists()
    assert peak < 150 * 1024, f"peak RSS {peak} KiB"


@pytest.mark.parametrize("name", ["status.yaml", "workflow-control.yaml"])
def test_a_metadata_file_with_an_alias_bomb_is_exit_2(pipeline, name):
    (pipeline.metadata / name).write_text(BOMB)
    pipeline.step("s", "run:\n  - [touch, ran]\nworkdir: ../work\n")
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert f"{name}:6:8: document too large (aliases expand" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_recorded_outputs_nested_too_deeply_are_exit_2(pipeline):
    folder = pipeline.metadata / "runner" / "outputs"
    folder.mkdir(parents=True)
    (folder / "old.json").write_text("[" * 100_000 + "]" * 100_000)
    pipeline.step("s", "run:\n  - [touch, ran]\nworkdir: ../work\n")
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "cannot read the outputs an earlier step recorded in" in result.stderr
    assert "old.json: it is not a step's outputs" in result.stderr


# -- durations and expressions that once crashed the runner ------------------------------------


def _validate(pipeline: Pipeline, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(path)],
        cwd=pipeline.work,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        ("1e999999", "spec.timeout: inf is greater than the maximum of 9223372036"),
        ("9" * 60 + "h", "spec.timeout: "),
        (".nan", "spec.timeout: NaN is not a number of seconds"),
    ],
    ids=["infinite", "long-string", "nan"],
)
def test_a_timeout_beyond_any_timer_is_refused_by_validate_and_run(pipeline, timeout, message):
    path = pipeline.step("t", f"run:\n  - [touch, ran]\nworkdir: ../work\ntimeout: {timeout}\n")
    checked = _validate(pipeline, path)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"t.yaml:9:12: {message}" in checked.stdout + checked.stderr
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert "t.yaml:9:12: spec.timeout:" in result.stderr
    assert not (pipeline.work / "ran").exists()


def test_an_expression_nested_thirty_thousand_deep_is_a_located_error(pipeline):
    expression = "a|" * 30_000 + "a"
    path = pipeline.step(
        "deep",
        f'inputs:\n  x: {{ jmespath: "{expression}", default: d }}\nrun:\n  - [touch, ran]\n'
        "workdir: ../work\n",
    )
    checked = _validate(pipeline, path)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    located = (
        "deep.yaml:7:20: spec.inputs.x.jmespath: invalid jmespath: expression nests too deeply"
    )
    assert located in checked.stdout + checked.stderr
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert located in result.stderr
    assert not (pipeline.work / "ran").exists()


# -- `runner test` case files ------------------------------------------------------------------


def _case(tmp_path: Path, **files: bytes | str) -> subprocess.CompletedProcess[str]:
    steps = tmp_path / "steps.d"
    steps.mkdir()
    (steps / "s.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: runner.kratix.dev/v1alpha1
            kind: Step
            metadata: {name: s}
            spec:
              run: [[echo, hi]]
            """
        )
    )
    case = tmp_path / "case"
    (case / "input").mkdir(parents=True)
    (case / "input" / "object.yaml").write_text("apiVersion: v1\nkind: App\nmetadata: {name: x}\n")
    for name, data in files.items():
        target = case / name.replace("_", ".")
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data)
    (tmp_path / "tmp").mkdir()
    return subprocess.run(
        [sys.executable, "-m", "runner", "test", "--steps-dir", str(steps), str(case)],
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_case_env_file_with_a_nul_byte_is_exit_2_naming_it(tmp_path):
    result = _case(tmp_path, env=b"A=1\nTOKEN=s3cr3t\0value\n")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out
    assert "case/env:2:13: a NUL byte in a value" in out
    assert "s3cr3t" not in out


def test_a_case_timeout_of_infinity_is_exit_2_naming_the_file(tmp_path):
    result = _case(tmp_path, case_yaml="timeout: 1e999\n")
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "Traceback" not in out
    assert "case/case.yaml:1:10: timeout: expected a duration like 30s or 2m" in out


def test_a_case_file_with_an_alias_bomb_is_exit_2(tmp_path):
    result = _case(tmp_path, case_yaml="description: x\nx:\n" + textwrap.indent(BOMB, "  "))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "case.yaml:" in out and "document too large (aliases expand" in out


def test_data_read_without_positions_has_the_same_values_and_keeps_none():
    from runner.base.source import parse_yaml

    text = "a: {b: [1, two, {c: null}]}\nd: &x [3]\ne: *x\n"
    [located], _ = parse_yaml(text, "f.yaml")
    [bare], _ = parse_yaml(text, "f.yaml", located=False)
    assert bare.value == located.value
    assert located.positions and not bare.positions and not bare.key_positions
    _, [problem] = parse_yaml("a: [1, *nope]\n", "f.yaml", located=False)
    assert problem.format() == "f.yaml:1:8: undefined alias *nope"


@pytest.mark.parametrize("timeout", ["inf", "1e999", "nan", "-5"])
def test_a_test_timeout_option_that_is_no_duration_is_a_usage_error(tmp_path, timeout):
    steps = tmp_path / "steps.d"
    steps.mkdir()
    (tmp_path / "tmp").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "runner", "test", "--steps-dir", str(steps), "--timeout", timeout,
         str(tmp_path)],
        cwd=tmp_path, env=base_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"argument --timeout: '{timeout}' is not valid: expected a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_limits_agree_with_the_kernel():
    """What we refuse, Linux refuses; what we allow, it starts (the total with a small margin)."""

    def starts(env: dict[str, str]) -> bool:
        try:
            subprocess.run(["/bin/true"], env=env, check=True)
        except OSError:
            return False
        return True

    fits = {"A": "v" * (MAX_ARG_STRLEN - 3)}  # "A=" + value + NUL: exactly one string's limit
    over = {"A": "v" * (MAX_ARG_STRLEN - 2)}
    assert too_big(["/bin/true"], fits) is None and starts(fits)
    assert too_big(["/bin/true"], over) is not None and not starts(over)
    room = total_limit() - 4096
    near = {f"V{i}": "z" * 100_000 for i in range(room // 100_020)}
    assert too_big(["/bin/true"], near) is None and starts(near)
    beyond = {**near, **{f"W{i}": "z" * 100_000 for i in range(40)}}
    assert too_big(["/bin/true"], beyond) is not None and not starts(beyond)
