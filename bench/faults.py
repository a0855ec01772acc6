"""How much API trouble `runner run` survives: sweep the share of failed requests and find the
highest at which 20 of 20 runs still succeed, with no update lost or applied twice.

    .venv/bin/python bench/faults.py                      # 503, resets, lost answers; ~5-10 min
    .venv/bin/python bench/faults.py --kinds 503 --rates 0.3,0.4,0.5 --runs 20
    .venv/bin/python bench/faults.py --kinds 429,mixed --runs 10

Each (kind, rate) row is a fresh loopback API server (tests/kubeapi) and a fresh pipeline
folder, and `--runs` runs one after another of the counter step from tests/reliability
(ConfigMap state of `--big` incompressible bytes: 2 chunk objects by default, so a run makes
about 12 requests: Lease, main object, chunks, Lease renewals and release). After each run the
stored state is decoded with faults paused and must be exactly the state before (exit 3) or
after (exit 0, or exit 3 when the save landed but its answer was lost). Kinds run side by side,
rates in order; a kind's sweep stops after `--stop-after` rates in a row below runs/runs.

Kinds: 503 (Service Unavailable), 429 (Too Many Requests, Retry-After: 1), reset (TCP reset
before the request is served), lost (served, then the connection is reset: the client can't
know the write happened), mixed (equal shares of 503, reset and lost, plus 20 ms per answer).
The runner retries a request RUNNER_KUBE_ATTEMPTS times (default 6), with jittered backoff from
0.2 s doubling to 5 s.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.kubeapi import FakeKubeAPI, server  # noqa: E402
from tests.reliability.helpers import (  # noqa: E402
    Tally,
    counted_runs,
    counter_step,
    make_pipeline,
    point_at,
)

KINDS = {
    "503": lambda r: {"rate": r, "status": 503},
    "429": lambda r: {"rate": r, "status": 429},
    "reset": lambda r: {"reset_rate": r},
    "lost": lambda r: {"lost_response_rate": r},
    "mixed": lambda r: {"rate": r / 3, "reset_rate": r / 3, "lost_response_rate": r / 3,
                        "latency": 0.02},
}
DEFAULT_RATES = "0.05,0.1,0.2,0.3,0.4,0.5,0.6"

_print_lock = threading.Lock()


def _quiet_handle_error(self, request, client_address) -> None:
    """The loopback server reports connections it reset on purpose; not news here."""


server.KubeHTTPServer.handle_error = _quiet_handle_error  # this process only


def one_row(scratch: Path, kind: str, rate: float, runs: int, big: int, seed: int,
            attempts: int | None) -> tuple[Tally, int]:
    root = scratch / f"{kind}-{rate}"
    pipeline = make_pipeline(root)
    if attempts:
        pipeline.env["RUNNER_KUBE_ATTEMPTS"] = str(attempts)
    with FakeKubeAPI() as api:
        point_at(pipeline, api)
        counter_step(pipeline, "configmap", big=big)
        tally = counted_runs(pipeline, api, root, runs, {**KINDS[kind](rate), "seed": seed}, big)
        injected = sum(1 for _, _, status in api.requests if status in (0, 429, 503))
    shutil.rmtree(root, ignore_errors=True)
    return tally, injected


def row_text(kind: str, rate: float, t: Tally, injected: int) -> str:
    mean = sum(t.seconds) / max(1, len(t.seconds))
    slowest = max(t.seconds, default=0.0)
    other = f"  other: {len(t.other)} ({t.other[0][:80]!r})" if t.other else ""
    return (f"{kind:>6} {rate:>5.2f} {injected:>7} {t.runs:>4} {t.ok:>4} {t.failed:>5} "
            f"{t.applied:>7} {t.lost:>4} {t.duplicated:>4} {t.final:>5} {mean:>6.2f} "
            f"{slowest:>6.2f}{other}")


HEADER = (f"{'kind':>6} {'rate':>5} {'faults':>7} {'runs':>4} {'ok':>4} {'exit3':>5} "
          f"{'applied':>7} {'lost':>4} {'dup':>4} {'final':>5} {'s/run':>6} {'max s':>6}")


def sweep(scratch: Path, kind: str, rates: list[float], args: argparse.Namespace,
          rows: list[tuple[str, float, Tally, int]]) -> None:
    misses = 0
    for rate in rates:
        tally, injected = one_row(scratch, kind, rate, args.runs, args.big, args.seed,
                                  args.attempts)
        rows.append((kind, rate, tally, injected))
        with _print_lock:
            print(row_text(kind, rate, tally, injected), flush=True)
        misses = 0 if tally.ok == args.runs else misses + 1
        if args.stop_after and misses >= args.stop_after:
            break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="503,reset,lost", help=f"of {','.join(KINDS)}")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="shares of requests to fail")
    parser.add_argument("--runs", type=int, default=20, help="runs per (kind, rate)")
    parser.add_argument("--big", type=int, default=1_200_000, help="state bytes (incompressible)")
    parser.add_argument("--seed", type=int, default=7, help="the API server's fault draws")
    parser.add_argument("--attempts", type=int, help="RUNNER_KUBE_ATTEMPTS (default: the runner's)")
    parser.add_argument("--stop-after", type=int, default=2,
                        help="stop a kind after this many rates in a row below runs/runs (0: never)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; expected some of {list(KINDS)}")
    rates = sorted(float(r) for r in args.rates.split(","))
    scratch = Path(tempfile.mkdtemp(prefix="runner-faults-"))
    rows: list[tuple[str, float, Tally, int]] = []
    began = time.monotonic()
    print(f"{args.runs} runs per row, state {args.big} bytes, seed {args.seed}, "
          f"attempts {args.attempts or 'default (6)'}; kinds side by side\n{HEADER}", flush=True)
    try:
        with ThreadPoolExecutor(len(kinds)) as pool:
            for future in [pool.submit(sweep, scratch, k, rates, args, rows) for k in kinds]:
                future.result()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nsorted ({time.monotonic() - began:.0f} s in all)\n{HEADER}")
    for kind in kinds:
        for k, rate, tally, injected in sorted(rows, key=lambda r: r[1]):
            if k == kind:
                print(row_text(k, rate, tally, injected))
    print("\nhighest rate with every run succeeding (and every lower rate too):")
    for kind in kinds:
        best = None
        for k, rate, tally, _ in sorted(rows, key=lambda r: r[1]):
            if k != kind:
                continue
            if tally.ok != args.runs:
                break
            best = rate
        print(f"  {kind:>6}: {best if best is not None else 'none'} ({args.runs}/{args.runs})")
    reasons: Counter[str] = Counter()
    for _, _, tally, _ in rows:
        reasons.update(tally.reasons)
    if reasons:
        print("\nwhy the exit-3 runs gave up:")
        for reason, count in reasons.most_common():
            print(f"  {count:>3} x {reason}")
    lost = sum(t.lost + t.duplicated for _, _, t, _ in rows)
    other = sum(len(t.other) for _, _, t, _ in rows)
    runs = sum(t.runs for _, _, t, _ in rows)
    faults = sum(i for *_, i in rows)
    print(f"\nruns: {runs}, faults injected: {faults}, updates lost or duplicated: {lost}, "
          f"other exits or tracebacks: {other}")
    return 0 if lost == 0 and other == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
