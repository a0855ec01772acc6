"""What `runner test` shows: each case's result, the summary line, the JUnit XML report, and
the JSON report of `--format json`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from runner.cases.runcase import Result

_LOG_TAIL = 30  # lines of a failed run's log shown without -v


@dataclass(frozen=True)
class Style:
    """ANSI colours when enabled, else plain text."""

    enabled: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def note(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def diff_line(self, line: str) -> str:
        if line.startswith(("+++", "---")):
            return self._wrap("1", line)
        if line.startswith("@@"):
            return self._wrap("36", line)
        if line.startswith("+"):
            return self.ok(line)
        if line.startswith("-"):
            return self.bad(line)
        return line


def choose_style(color: str, stream: TextIO, environ: Mapping[str, str]) -> Style:
    """`--color`: always, never, or auto (on a terminal, unless NO_COLOR is set)."""
    return Style(
        color == "always" or (color == "auto" and stream.isatty() and not environ.get("NO_COLOR"))
    )


def format_result(result: Result, style: Style, verbose: bool = False) -> str:
    """A case's report: one line when it passed, the reasons and diffs when it didn't."""
    case = result.case

    def timing(note: str = "") -> str:
        return style.dim(f"({result.duration:.2f}s{note})")

    lines: list[str] = []
    if result.error:
        lines.append(f"{style.bad('ERROR')} {case.name}: {result.error}")
    elif result.passed and result.updated:
        lines.append(f"{style.note('UPDATED')} {case.name} {timing()}")
        lines += [f"    wrote {path}" for path in result.updated]
    elif result.passed:
        code = case.expect.exit_code
        note = f", exit {code} as expected" if code else ""
        lines.append(f"{style.ok('PASS')} {case.name} {timing(note)}")
    else:
        lines.append(f"{style.bad('FAIL')} {case.name} {timing()}")
        if case.description:
            lines.append(f"    {style.dim(case.description)}")
        lines += [f"    {failure}" for failure in result.failures]
        for difference in result.differences:
            lines.append(f"    {difference.headline()}")
            lines += [f"      {style.diff_line(line)}" for line in difference.diff]
    if result.kept is not None:
        lines.append(f"    {style.dim(f'results kept in {result.kept}')}")
    if (verbose or result.failures) and not result.error:
        tail = None if verbose else _LOG_TAIL
        lines += _log_excerpt("stdout", result.stdout, tail, style)
        lines += _log_excerpt("stderr", result.stderr, tail, style)
    return "\n".join(lines)


def _log_excerpt(name: str, text: str, tail: int | None, style: Style) -> list[str]:
    lines = text.splitlines()
    if not lines:
        return []
    header = f"    {name} of runner run"
    if tail is not None and len(lines) > tail:
        header += f" (last {tail} of {len(lines)} lines)"
        lines = lines[-tail:]
    return [style.dim(header + ":"), *(f"      | {line}" for line in lines)]


def summary(results: list[Result], style: Style) -> str:
    """The last line: `N passed, M failed`, and how many were updated."""
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    updated = sum(1 for r in results if r.updated)
    text = f"{passed} passed, {failed} failed"
    if updated:
        text += f" ({updated} updated)"
    return style.bad(text) if failed else style.ok(text)


def write_junit(path: Path, results: list[Result]) -> None:
    """A JUnit XML report, which CI systems show as test results."""
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite", name="runner test", tests=str(len(results)),
        failures=str(sum(1 for r in results if not r.passed and not r.error)),
        errors=str(sum(1 for r in results if r.error)),
        time=f"{sum(r.duration for r in results):.3f}",
    )  # fmt: skip
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="runner.test",
            name=result.case.name,
            time=f"{result.duration:.3f}",
        )
        if result.error:
            ET.SubElement(case, "error", message=result.error)
        elif not result.passed:
            first = (result.failures or [d.headline() for d in result.differences])[0]
            text = format_result(result, Style(False))
            ET.SubElement(case, "failure", message=first).text = text
        if result.stderr:
            ET.SubElement(case, "system-err").text = result.stderr
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def status(result: Result) -> str:
    """pass, fail or error (the case could not be run at all)."""
    if result.error:
        return "error"
    return "pass" if result.passed else "fail"


def json_report(results: list[Result], duration: float) -> dict[str, Any]:
    """`--format json`: every case's status, what failed, each differing file with its diff."""
    statuses = [status(r) for r in results]
    return {
        "passed": all(s == "pass" for s in statuses),
        "summary": {
            "cases": len(results),
            "passed": statuses.count("pass"),
            "failed": statuses.count("fail"),
            "errors": statuses.count("error"),
            "updated": sum(1 for r in results if r.updated),
        },
        "duration": round(duration, 3),
        "cases": [_case_report(r, s) for r, s in zip(results, statuses, strict=True)],
    }


def _case_report(result: Result, status: str) -> dict[str, Any]:
    case = result.case
    return {
        "name": case.name,
        "description": case.description,
        "status": status,
        "duration": round(result.duration, 3),
        "exitCode": result.exit_code,
        "expectedExitCode": case.expect.exit_code,
        "failures": result.failures,
        "differences": [
            {"file": d.path, "kind": d.kind, "message": d.headline(), "diff": "\n".join(d.diff)}
            for d in result.differences
        ],
        "updated": result.updated,
        "error": result.error,
        "kept": str(result.kept) if result.kept is not None else None,
        "stdout": result.stdout,
        "stderr": result.stderr,
    }
