"""What the benchmarks share: the loopback API server, timed child processes, state payloads,
and the figures' arithmetic. Nothing here is part of the product."""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The runner of the virtualenv whose python runs the bench (make test-latest's too), else .venv's.
_OWN_BIN = Path(sys.executable).parent
VENV_BIN = _OWN_BIN if (_OWN_BIN / "runner").exists() else REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
RUNNER = str(VENV_BIN / "runner")
MIB = 1024 * 1024

# Children still running, so an interrupted benchmark can end them (by pid, nothing broader).
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def _track(proc: subprocess.Popen[bytes], alive: bool) -> None:
    with _LIVE_LOCK:
        (_LIVE.add if alive else _LIVE.discard)(proc)


def end_children() -> None:
    """Stop every child this process started and is still running: SIGTERM, then SIGKILL."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.terminate()
            except OSError:
                pass
    deadline = time.monotonic() + 5
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _track(proc, False)


def install_termination_handler() -> None:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C does, so `finally` blocks clean up; SIGINT raises
    KeyboardInterrupt even when the shell that started us ignored it (a `&` job)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@contextmanager
def scratch_dir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="runner-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the loopback API server


class KubeAPI:
    """`python -m tests.kubeapi` in its own process, steered over its /_fake/ endpoints."""

    def __init__(self, kubeconfig: Path, log: Path, *, ca_file: Path | None = None) -> None:
        """`ca_file`: serve HTTPS, writing the throwaway CA there (and trusting it here)."""
        self.kubeconfig = kubeconfig
        self._log = log.open("wb")
        tls = ["--ca-file", str(ca_file)] if ca_file is not None else []
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.kubeapi", "--port", "0", *tls, "--kubeconfig", str(kubeconfig)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        _track(self.proc, True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the loopback API server did not start (see {log})")
        self.url = line
        self._context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _track(self.proc, False)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def reset_counts(self) -> None:
        self._call("POST", "/_fake/reset-counts")

    def requests(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self._call("GET", "/_fake/requests")["requests"]]  # type: ignore[misc]

    def serves(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10):
                return True
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# timed child processes


@dataclass
class Timed:
    argv: list[str]
    rc: int
    wall: float  # seconds, fork to reaped
    started: float  # time.time() just before the fork
    cpu: float  # user + system seconds of the child and the children it reaped
    maxrss_kb: int  # ru_maxrss from wait4: the child's peak RSS (see README: children)
    hwm_kb: int  # the child's own VmHWM, last sampled from /proc before it exited
    stdout: str
    stderr: str


def run_timed(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    out_dir: Path,
    sample_hwm: bool = False,
    timeout: float = 300,
) -> Timed:
    """Run argv and reap it with wait4: exact wall time, CPU time and peak RSS, no wrapper
    process. With sample_hwm, a thread reads the child's own VmHWM from /proc every 10 ms."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = out_dir / "stdout", out_dir / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        _track(proc, True)
        hwm = [0]
        stop = threading.Event()
        sampler = None
        if sample_hwm:
            sampler = threading.Thread(target=_sample_hwm, args=(proc.pid, hwm, stop), daemon=True)
            sampler.start()
        timer = threading.Timer(timeout, _kill, args=(proc,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # blocks; Ctrl-C still interrupts it
            wall = time.perf_counter() - t0
        finally:
            timer.cancel()
            stop.set()
            if proc.returncode is None and _alive(proc.pid):
                proc.kill()
                proc.wait()
            _track(proc, False)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler is not None:
            sampler.join()
    return Timed(
        list(argv),
        proc.returncode,
        wall,
        started,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        hwm[0],
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.kill()
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def _sample_hwm(pid: int, hwm: list[int], stop: threading.Event) -> None:
    path = f"/proc/{pid}/status"
    while not stop.is_set():
        try:
            with open(path, "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
                        break
        except (OSError, IndexError, ValueError):
            return
        stop.wait(0.01)


# ---------------------------------------------------------------------------------------------
# payloads


def fake_tfstate(size: int, seed: int = 1) -> bytes:
    """`size` bytes of ASCII that look like a Terraform state (JSON, ids, ARNs, hashes), so it
    compresses about as a real one does rather than to nothing."""
    rng = random.Random(seed)
    types = [
        "minio_s3_bucket",
        "aws_iam_role",
        "aws_security_group",
        "kubernetes_config_map",
        "random_password",
        "aws_instance",
        "null_resource",
        "aws_route53_record",
    ]
    parts = [
        '{\n  "version": 4,\n  "terraform_version": "1.7.5",\n  "serial": 42,\n'
        f'  "lineage": "{rng.randbytes(16).hex()}",\n  "outputs": {{}},\n  "resources": [\n'
    ]
    total = len(parts[0])
    index = 0
    while total < size:
        kind = rng.choice(types)
        rid = rng.randbytes(8).hex()
        block = (
            f'    {{\n      "mode": "managed",\n      "type": "{kind}",\n      "name": "r{index}",\n'
            f'      "provider": "provider[\\"registry.terraform.io/hashicorp/aws\\"]",\n'
            f'      "instances": [{{\n        "schema_version": {rng.randint(0, 3)},\n'
            f'        "attributes": {{\n          "id": "{rid}",\n'
            f'          "arn": "arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:{kind}/{rid}",\n'
            f'          "etag": "{rng.randbytes(16).hex()}",\n'
            f'          "tags": {{"team": "platform-{rng.randint(1, 40)}", "env": "prod"}},\n'
            f'          "fingerprint": "{rng.randbytes(24).hex()}",\n'
            f'          "created": "2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T1{rng.randint(0, 9)}'
            f':{rng.randint(10, 59)}:{rng.randint(10, 59)}Z"\n        }},\n'
            f'        "sensitive_attributes": [],\n        "private": "bnVsbA=="\n      }}]\n    }},\n'
        )
        parts.append(block)
        total += len(block)
        index += 1
    return "".join(parts).encode("ascii")[: size - 1] + b"\n"  # a text file ends with a newline


# ---------------------------------------------------------------------------------------------
# figures


@dataclass
class Series:
    """Repeated measurements of one figure."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> str:
        """min-max, for the table's notes."""
        if not self.values:
            return "-"
        return f"{min(self.values):.3f}-{max(self.values):.3f}"


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def mb(kb: float) -> str:
    return "-" if kb != kb else f"{kb / 1024:.1f} MB"


def ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain-text table, columns padded; a row of one cell is a section title."""
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) > 1:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for row in rows:
        out.append(f"[{row[0]}]" if len(row) == 1 else line(row))
    return "\n".join(out)


def log_events(stderr: str) -> list[dict[str, Any]]:
    """The runner's `--log-format json` records (anything else on stderr is skipped)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def log_time(record: dict[str, Any]) -> float:
    """A log record's `time` (UTC, milliseconds) as epoch seconds."""
    import calendar

    stamp = record["time"]
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


# ---------------------------------------------------------------------------------------------
# where a Python process's time and memory go (printed when a goal fails)

_MAIN_WRAPPER = """\
import os, sys, time
from runner.cli import main
rc = main(sys.argv[1:])
sys.stdout.flush()
print("MAIN-RETURNED %r" % time.time(), file=sys.stderr, flush=True)
if os.environ.get("BENCH_FAST_EXIT"):
    os._exit(rc)
sys.exit(rc)
"""


def shutdown_cost(
    args: Sequence[str], env: dict[str, str], cwd: Path, out: Path, reset: Any, runs: int = 3
) -> tuple[float, float]:
    """Seconds from `runner.cli.main` returning to the process being reaped: as it exits
    normally, and with os._exit (no interpreter finalization). `reset` runs before each run."""
    normal, fast = Series(), Series()
    for i in range(runs * 2):
        reset()
        child_env = dict(env)
        if i % 2:
            child_env["BENCH_FAST_EXIT"] = "1"
        timed = run_timed([PYTHON, "-c", _MAIN_WRAPPER, *args], child_env, cwd, out / f"exit-{i}")
        stamp = next(
            (
                line.split()[1]
                for line in timed.stderr.splitlines()
                if line.startswith("MAIN-RETURNED")
            ),
            None,
        )
        if stamp is not None:
            (fast if i % 2 else normal).add(timed.started + timed.wall - float(stamp))
    return normal.median, fast.median


def import_times(argv: Sequence[str], env: dict[str, str], cwd: Path, out: Path) -> list[str]:
    """`python -X importtime` of a run, summarised: top-level imports and the heaviest ones."""
    timed = run_timed([PYTHON, "-X", "importtime", *argv], env, cwd, out)
    rows = []
    for line in timed.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            rows.append(
                (int(found.group(1)), int(found.group(2)), len(found.group(3)) // 2, found.group(4))
            )
    if not rows:
        return ["    (python -X importtime printed nothing)"]
    total = sum(cum for _, cum, depth, _ in rows if depth == 0)
    lines = [
        f"python -X importtime of one `runner run`: {total / 1000:.0f} ms importing {len(rows)} "
        "modules (importtime's own overhead included); top-level imports by cumulative time:"
    ]
    top = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:10]
    lines += [f"    {cum / 1000:7.1f} ms  {name}" for _, cum, _, name in top]
    lines.append("  largest self times:")
    lines += [
        f"    {own / 1000:7.1f} ms  {name}"
        for own, _, _, name in sorted(rows, key=lambda r: -r[0])[:6]
    ]
    return lines


_PROFILED = """\
import sys
from runner.cli import main
sys.exit(main(sys.argv[1:]))
"""


def profile_run(args: Sequence[str], env: dict[str, str], cwd: Path, out: Path) -> list[str]:
    """cProfile of `runner ARGS`, summarised: top functions by cumulative and by own time, with
    the import machinery left out of the cumulative list (importtime covers it). It profiles
    `runner.cli.main`, not the console script, which ends with os._exit: cProfile would never
    get to write its file."""
    import pstats

    prof = out / "run.prof"
    out.mkdir(parents=True, exist_ok=True)
    script = out / "profiled.py"
    script.write_text(_PROFILED)
    argv = [PYTHON, "-m", "cProfile", "-o", str(prof), str(script), *args]
    timed = run_timed(argv, env, cwd, out)
    if timed.rc != 0 or not prof.exists():
        return [f"    (the cProfile run failed: exit {timed.rc})"]
    raw: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    entries = [
        (ct, tt, nc, _where(file, line, func))
        for (file, line, func), (_cc, nc, tt, ct, _callers) in raw.items()
    ]
    machinery = (
        "importlib",
        "<frozen",
        "<module>",
        "builtins.exec",
        "builtins.__import__",
        "import_module",
        "_call_with_frames_removed",
        "cProfile",
        "runpy",
        "profile.py",
    )
    lines = [
        f"cProfile of one `runner run` ({timed.wall * 1000:.0f} ms under the profiler); "
        "by cumulative time, import machinery left out:"
    ]
    shown = [
        e for e in sorted(entries, key=lambda e: -e[0]) if not any(m in e[3] for m in machinery)
    ]
    lines += [
        f"    {ct * 1000:7.1f} ms cum {tt * 1000:6.1f} ms own {nc:6d}x  {where}"
        for ct, tt, nc, where in shown[:14]
    ]
    lines.append("  by own time:")
    lines += [
        f"    {tt * 1000:7.1f} ms own {nc:6d}x  {where}"
        for _, tt, nc, where in sorted(entries, key=lambda e: -e[1])[:8]
    ]
    return lines


def _where(file: str, line: int, func: str) -> str:
    if file == "~":
        return func
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file.replace(str(REPO) + '/', '')}:{line}({func})"


def import_memory(stages: Sequence[tuple[str, str]], cwd: Path) -> list[str]:
    """Peak RSS of a python that runs each stage's code (imports), for where memory goes."""
    probe = "\nimport re as _re\nprint(_re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    lines = []
    for label, code in stages:
        result = subprocess.run(
            [PYTHON, "-c", (code or "pass") + probe],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=60,
        )
        last = result.stdout.strip().splitlines()[-1:] if result.returncode == 0 else []
        value = mb(float(last[0])) if last and last[0].isdigit() else "?"
        lines.append(f"    {value:>9}  {label}")
    return lines
