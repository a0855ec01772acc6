"""All the cases of one `runner test`: loaded first, run N at once, reported in the order given."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TextIO

from runner.cases.case import Case, load_cases
from runner.cases.process import stop_all
from runner.cases.report import Style, format_result, json_report, summary, write_junit
from runner.cases.runcase import Options, Result, run_case


def run_suite(
    case_dirs: Iterable[str],
    *,
    steps_dir: str | None,
    environ: Mapping[str, str],
    options: Options,
    jobs: int,
    style: Style,
    verbose: bool,
    junit: Path | None,
    out: TextIO,
    fmt: str = "text",
) -> bool:
    """Run every case and print each result and the summary (`fmt` text), or one JSON document
    at the end (`fmt` json), on `out`; True when all passed.

    InvalidError, with no case run, when any case folder is bad."""
    started = time.monotonic()
    cases = load_cases(case_dirs, steps_dir, environ)
    show = (
        None
        if fmt == "json"
        else lambda r: print(format_result(r, style, verbose), file=out, flush=True)
    )
    results = _run_cases(cases, options, environ, jobs, show)
    if fmt == "json":
        report = json_report(results, time.monotonic() - started)
        out.write(json.dumps(report, indent=2) + "\n")  # ASCII: names may not be UTF-8
    else:
        print(f"\n{summary(results, style)}", file=out)
    if junit is not None:
        write_junit(junit, results)
    return all(r.passed for r in results)


def _run_cases(
    cases: list[Case],
    options: Options,
    environ: Mapping[str, str],
    jobs: int,
    show: Callable[[Result], None] | None,
) -> list[Result]:
    """Run the cases, `jobs` at once, showing each result in case order as it becomes known."""
    results: list[Result] = []
    # SIGTERM (a CI job cancelled) stops the runs like Ctrl-C does, rather than orphaning them.
    signal.signal(signal.SIGTERM, _interrupt)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            futures = [pool.submit(run_case, case, options, environ) for case in cases]
            for future in futures:
                result = future.result()
                results.append(result)
                if show is not None:
                    show(result)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_all()  # the runs save their state and stop; their folders are removed
            raise  # once the pool has waited for them
    return results


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
