"""All the cases of one `runner test`: loaded first, run one at a time in process or N at once
in forked processes, reported in the order given."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

from runner.cases.case import Case, load_cases
from runner.cases.inprocess import RunCommandLine
from runner.cases.report import Style, format_result, json_report, summary, write_junit
from runner.cases.runcase import Options, Result, run_case, timeout_of


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
    run: RunCommandLine,
    fmt: str = "text",
) -> bool:
    """Run every case and print each result and the summary (`fmt` text), or one JSON document
    at the end (`fmt` json), on `out`; True when all passed. `run` is the command line's entry
    point (`cli.main`), through which each case runs `runner run` in process.

    InvalidError, with no case run, when any case folder is bad."""
    started = time.monotonic()
    cases = load_cases(case_dirs, steps_dir, environ)
    show = (
        None
        if fmt == "json"
        else lambda r: print(format_result(r, style, verbose), file=out, flush=True)
    )
    results = _run_cases(cases, options, environ, run, jobs, show)
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
    run: RunCommandLine,
    jobs: int,
    show: Callable[[Result], None] | None,
) -> list[Result]:
    """Run the cases, `jobs` at once, showing each result in case order as it becomes known."""
    from runner.cases.forked import run_forked

    def one(case: Case) -> Result:
        return run_case(case, options, environ, run)

    # SIGTERM (a CI job cancelled) stops the runs like Ctrl-C does, rather than orphaning them.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if jobs > 1 and len(cases) > 1:
            return run_forked(cases, one, lambda case: timeout_of(case, options), jobs, show)
        results: list[Result] = []
        for case in cases:  # in this process, one after the other (a run's signals are ours)
            results.append(one(case))
            if show is not None:
                show(results[-1])
        return results
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
