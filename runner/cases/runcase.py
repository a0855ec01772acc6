"""Running one case: `runner run` in process (inprocess.py) with fresh folders, a fresh local
state store and its own environment, its output masked, then judged against what the case
expects."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.base.errors import StoreError
from runner.base.words import display
from runner.cases.case import Case, Expect, steps_of
from runner.cases.case_files import CASE_FILE, ENV_FILE, TREES
from runner.cases.compare import (
    RUNNER_RECORDS,
    Difference,
    compare_trees,
    snapshot,
    without_runner_records,
    write_expectations,
)
from runner.cases.inprocess import RunCommandLine, own_session_masker, run_in_process
from runner.cases.seed import seed_state
from runner.cases.step_outputs import write_step_outputs
from runner.platform.masking import Masker

DEFAULT_TIMEOUT = 600.0

# Environment variables a case must not inherit from the shell running `runner test`: they would
# make the result depend on who runs it (the case says what it wants instead).
_NOT_INHERITED = re.compile(
    r"^(KRATIX_.*|RUNNER_STATE_STORE|RUNNER_STATE_DIR|RUNNER_STEPS_DIR|RUNNER_LOG_FORMAT"
    r"|KUBERNETES_SERVICE_HOST|KUBERNETES_SERVICE_PORT)$"
)


@dataclass(frozen=True)
class Options:
    update: bool = False
    keep: bool = False
    timeout: float = DEFAULT_TIMEOUT  # unless the case's case.yaml says


@dataclass
class Result:
    case: Case
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    failures: list[str] = field(default_factory=list)  # exit code and stdout/stderr checks
    differences: list[Difference] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: Path | None = None
    error: str | None = None  # the case could not be run at all

    @property
    def passed(self) -> bool:
        return not self.failures and not self.differences and self.error is None


def run_case(
    case: Case, options: Options, environ: Mapping[str, str], run: RunCommandLine
) -> Result:
    """Run the case's steps with fresh folders and compare the results: `run` is the command
    line's entry point (`cli.main`), which runs `runner run` in this process."""
    masker, warnings = _masker(case)
    result = Result(case)
    scratch = Path(tempfile.mkdtemp(prefix=f"runner-test-{case.path.name}-"))
    try:
        folders = {name: scratch / name for name in (*TREES, "state", "tmp")}
        for folder in folders.values():
            folder.mkdir()
        timeout = timeout_of(case, options)
        env = child_environment(case, environ, folders["tmp"])
        started = time.monotonic()
        with own_session_masker() as seeding:  # a state key read to seed is the case's secret
            warnings += seed_state(
                case.seed, steps_of(case.steps_dir), env, {**folders, "input": case.input_dir}
            )
        masker.extend(seeding)
        write_step_outputs(case.step_outputs, folders["metadata"])
        finished = run_in_process(run, _runner_run_argv(case, folders), env, timeout)
        result.duration = time.monotonic() - started
        masker.extend(finished.masker)  # what the run learned is secret (a state key, a value)
        _learn_sensitive_outputs(masker, folders["metadata"])
        result.exit_code = finished.exit_code
        result.stdout = masker.mask(finished.stdout)
        result.stderr = masker.mask("".join(f"runner test: warning: {w}\n" for w in warnings))
        result.stderr += masker.mask(finished.stderr)
        result.failures = _unmet_expectations(case.expect, result, timeout)
        actual = {tree: snapshot(folders[tree], masker) for tree in TREES}
        if not (case.path / "metadata" / RUNNER_RECORDS).is_dir():
            actual["metadata"] = without_runner_records(actual["metadata"])
        for tree in TREES:
            expected = snapshot(case.path / tree)
            result.differences += compare_trees(tree, expected, actual[tree], case.ignore, masker)
        if options.update and not result.failures and result.differences:
            result.updated = write_expectations(case.path, result.differences, actual)
            result.differences = []
        if options.keep:
            result.kept = scratch
    except OSError as exc:
        result.error = f"cannot run the case: {exc.strerror or exc}"
    except StoreError as exc:
        result.error = f"cannot seed the state: {exc}"
    finally:
        if not options.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    result.failures = [masker.mask(failure) for failure in result.failures]
    result.error = masker.mask(result.error) if result.error is not None else None
    return result


def timeout_of(case: Case, options: Options) -> float:
    """The case's timeout: case.yaml's `timeout:`, else `--timeout`."""
    return case.timeout or options.timeout


def _learn_sensitive_outputs(masker: Masker, metadata: Path) -> None:
    """Teach the masker the outputs the run recorded as sensitive (and what was built from
    them): the case's reports and `--update` files must hold none of them either."""
    from runner.base.errors import InvalidError
    from runner.resolve.step_outputs import mask_value, recorded_steps

    try:
        seen = recorded_steps(metadata)
    except InvalidError:
        return  # a broken record: the comparison shows it
    for value in seen.sensitive_values():
        mask_value(masker, "a sensitive step output", value)


def _masker(case: Case) -> tuple[Masker, list[str]]:
    """A masker of the case's secrets, and warnings for the ones too short to mask."""
    masker = Masker()
    warnings = []
    sources = (
        (ENV_FILE, case.secrets().items()),
        (CASE_FILE, case.step_outputs.secrets()),  # sensitiveOutputs
    )
    for file, secrets in sources:
        for name, value in secrets:
            warning = masker.add(name, value)
            if warning:
                warnings.append(f"{display(case.path / file)}: {warning}")
    return masker, warnings


def _runner_run_argv(case: Case, folders: dict[str, Path]) -> list[str]:
    return [
        "run", *case.steps,
        "--steps-dir", str(case.steps_dir), "--input", str(case.input_dir),
        "--output", str(folders["output"]), "--metadata", str(folders["metadata"]),
        "--state-store", f"local:{folders['state']}", "--log-format", "text",
    ]  # fmt: skip


def _unmet_expectations(expect: Expect, result: Result, timeout: float) -> list[str]:
    """A timeout or the wrong exit code, and the stdout and stderr checks that failed."""
    failures = []
    if result.exit_code is None:
        failures.append(f"timed out after {timeout:g}s")
    elif result.exit_code != expect.exit_code:
        failures.append(f"exit code {result.exit_code}, expected {expect.exit_code}")
    for name, log, wanted in (
        ("stdout", result.stdout, expect.stdout_contains),
        ("stderr", result.stderr, expect.stderr_contains),
    ):
        failures += [f"{name} does not contain {text!r}" for text in wanted if text not in log]
    return failures


def child_environment(case: Case, environ: Mapping[str, str], tmp: Path) -> dict[str, str]:
    """The environment of the case's `runner run`: the caller's, without anything that would
    make the result depend on who runs it, then the case's defaults, env file and case.yaml."""
    env = {k: v for k, v in environ.items() if not _NOT_INHERITED.match(k)}
    env.update(TMPDIR=str(tmp), KRATIX_WORKFLOW_ACTION="configure", KRATIX_WORKFLOW_TYPE="resource")
    env.update(case.env)
    env.update(case.kratix)
    return env
