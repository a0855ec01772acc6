#!/usr/bin/env python3
"""The runner against the Kratix tutorial's own script, side by side, in one run.

    .venv/bin/python bench/run.py [--quick] [--verbose] [--runs N] [--keep]

Starts the loopback Kubernetes API server (tests/kubeapi), then measures, alternating the two:
a state-backed step through `runner run` against bench/seed_script.sh (wall time, API requests,
the runner's peak RSS), `runner validate` against check-jsonschema (bench/validate.py), and
saving and restoring 0.9, 10 and 30 MiB states, 100 manifests rendered by `runner run`
against the marketplace's bash + yq (bench/manifests_script.sh), `runner run` in stamped
steps folders of 1, 100 and 1,000 files, `runner run` in a pod (the service account's
token and CA, HTTPS) against the seed script, and the state stores (local, configmap, s3)
plain and encrypted side by side, and `runner run` copying a 30 MiB base file. Prints a
table and the goals; where a goal fails, where the runner's time or memory goes. See
bench/README.md for what each figure means.
Each section is a module of bench/scenarios/; bench/harness.py and bench/common.py are what
they share. --quick (or BENCH_QUICK=1) runs every section once, at its smallest size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import (  # noqa: E402
    MIB,
    end_children,
    install_termination_handler,
    mb,
    scratch_dir,
    table,
)
from harness import Bench, BenchError  # noqa: E402
from scenarios.big_base import big_base  # noqa: E402
from scenarios.big_request import big_request  # noqa: E402
from scenarios.big_state import big_state  # noqa: E402
from scenarios.diagnostics import diagnostics  # noqa: E402
from scenarios.huge_states import huge_states  # noqa: E402
from scenarios.manifests import manifests  # noqa: E402
from scenarios.many_steps import many_steps  # noqa: E402
from scenarios.pod_startup import pod_startup  # noqa: E402
from scenarios.small_state import small_state  # noqa: E402
from scenarios.stores import stores  # noqa: E402
from scenarios.validate import validate  # noqa: E402


def header(b: Bench) -> str:
    kubectl = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    try:
        kubectl_version = json.loads(kubectl.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        kubectl_version = "?"
    yq_path = shutil.which("yq")
    yq_kind = "not found"
    if yq_path:
        with open(yq_path, "rb") as head:
            python = b"python" in head.read(200)
        yq_kind = "a Python jq wrapper, as Debian ships it" if python else "a native binary"
    mode = "--quick (every section once, smallest sizes: not figures to quote), " if b.quick else ""
    openapi = (
        ""
        if b.openapi
        else "\nThe server serves no OpenAPI, so the seed's `kubectl replace` runs with "
        "--validate=false (against a real cluster kubectl also GETs the OpenAPI documents)."
    ) + (
        "\nThe runner's steps folder is stamped by `runner validate --stamp`, as the image build does."
    )
    return (
        f"kratix-step-runner bench: {mode}{b.runs} run{'' if b.runs == 1 else 's'} per figure, "
        f"{os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, kubectl {kubectl_version}, yq {yq_path} ({yq_kind})\n"
        f"API server: loopback tests.kubeapi at {b.api.url}. The seed's kubectl gets a fresh "
        "--cache-dir per run\n(KUBECACHEDIR): discovery is not cached, as in a new pod." + openapi
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="every section once at its smallest size, in well under a minute ($BENCH_QUICK=1)",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (7; --quick: 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each run's API requests")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs of every run)"
    )
    parser.add_argument("--skip-big", action="store_true", help="skip section 5 (big states)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print where the runner's time and memory go even when every goal passes",
    )
    args = parser.parse_args(argv)
    for tool in ("kubectl", "yq", "bash"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not on PATH", file=sys.stderr)
            return 2
    install_termination_handler()
    started = time.monotonic()
    bench: Bench | None = None
    try:
        with scratch_dir(args.keep) as tmp:
            try:
                bench = Bench(args, tmp)
                small_state(bench)
                validate(bench)
                if not args.skip_big:
                    big_state(bench)
                    huge_states(bench)
                manifests(bench)
                many_steps(bench)
                big_request(bench)
                pod_startup(bench)
                stores(bench)
                big_base(bench)
                diagnosis = diagnostics(bench)
            finally:
                if bench is not None:
                    bench.close()
                end_children()
    except KeyboardInterrupt:
        print("\nbench: interrupted; server stopped and scratch folder removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except Exception:  # a bug here, or the API server died: say which, with the traceback
        dead = bench is not None and bench.api.proc.poll() not in (None, 0, -15)
        print(
            "bench: failed" + (" (the loopback API server had stopped)" if dead else ""),
            file=sys.stderr,
        )
        raise
    assert bench is not None
    print(header(bench))
    print()
    print(table(bench.rows, ["measure", "runner", "seed", "runner/seed", "notes"]))
    if bench.notes:
        print()
        print("\n".join(bench.notes))
    print()
    print("goals")
    for name, ok, figures in bench.goals:
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {verdict}  {name}: {figures}")
    if bench.rss_huge == bench.rss_huge:  # not NaN
        print(
            f"  note  not a goal: with a {bench.huge_sizes[-1] // MIB} MiB state `runner run` peaks "
            f"at {mb(bench.rss_huge)} RSS "
            "(runner/state/codec/ plans for a 256 MiB pod shared with terraform)"
        )
    if diagnosis:
        print()
        print(
            "where the time goes"
            + ("" if not bench.diagnose else " (printed because a goal failed)")
        )
        print("\n".join(diagnosis))
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
