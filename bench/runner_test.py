"""Benchmark: `runner test` on every example Promise's cases, this checkout against another.

    .venv/bin/python bench/runner_test.py [--runs N] [-j N] [--before RUNNER] [CASE_DIR...]

Times `runner test` (the `runner` program next to this interpreter) on the example cases
(default: examples/marketplace/*/tests/* and examples/app-promise/tests/*), N runs (default 3),
and prints the median wall time. With `--before` (another checkout's `runner` program, e.g.
`/tmp/old/.venv/bin/runner` made by `git worktree add /tmp/old 62f653a && make -C /tmp/old
install`), the two alternate run by run, so a busy machine slows both alike, and the table
shows both medians and the ratio. Every run must pass its cases.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"


def default_cases() -> list[str]:
    found = [
        *REPO.glob("examples/marketplace/*/tests/*"),
        *REPO.glob("examples/app-promise/tests/*"),
    ]
    return sorted(str(p) for p in found if p.is_dir())


def timed(runner: str, cases: list[str], jobs: int, cwd: str) -> float:
    """One `runner test`, from a folder holding no runner package: a `python -m runner` there
    (as a checkout before in-process cases ran each one) imports its own checkout's."""
    started = time.perf_counter()
    result = subprocess.run(
        [runner, "test", "-j", str(jobs), "--color", "never", *cases],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(
            f"{runner} test failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case folders (default: the examples')")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--before", help="another checkout's runner program, to compare with")
    args = parser.parse_args()
    cases = [str(Path(c).resolve()) for c in args.cases] or default_cases()
    contenders = {"this checkout": str(RUNNER)}
    if args.before:
        contenders = {"before": args.before, **contenders}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-runner-test-") as cwd:
        for _ in range(args.runs):
            for name, runner in contenders.items():
                times[name].append(timed(runner, cases, args.jobs, cwd))
    print(f"runner test -j {args.jobs}, {len(cases)} cases, {args.runs} runs each (median, runs)")
    for name, runs in times.items():
        each = " ".join(f"{t:.2f}" for t in runs)
        print(f"  {name:<14} {statistics.median(runs):6.2f}s   ({each})")
    if args.before:
        before, after = (statistics.median(times[n]) for n in contenders)
        print(f"  {'ratio':<14} {before / after:6.2f}x faster")


if __name__ == "__main__":
    main()
