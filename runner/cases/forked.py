"""`-j N`: cases run N at once, each in a process forked from `runner test` for it.

A case runs in process (inprocess.py), but what it relies on is the process's: signal handlers
and the alarm of the main thread, the session masker. So parallel cases can't share a process,
and threads can't run them. A fork costs a few milliseconds and inherits every module already
imported and the steps already loaded; the case runs in the child's main thread as it would in
`runner test` itself, and the child sends back the case's Result.

A child that outlives its case's timeout and grace (a hang that even SIGALRM can't end) is
killed; one that dies without a result is that case's error. On an interrupt (Ctrl-C reaches
the children too; a SIGTERM only this process) each child still running gets SIGTERM, stops
its run as `runner run` does, removes its folder, and is waited for.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkProcess

from runner.cases.case import Case
from runner.cases.inprocess import STOP_GRACE
from runner.cases.runcase import Result

# Beyond a case's timeout and STOP_GRACE, how long its child may take to send its Result.
_MARGIN = 10.0


def run_forked(
    cases: Sequence[Case],
    run_case: Callable[[Case], Result],
    timeout_of: Callable[[Case], float],
    jobs: int,
    show: Callable[[Result], None] | None,
) -> list[Result]:
    """Run the cases, `jobs` at once, each in a forked process; show each Result in case order
    as soon as it and those before it are known."""
    context = multiprocessing.get_context("fork")
    results: dict[int, Result] = {}
    running: dict[int, _Child] = {}
    shown = 0
    waiting = list(range(len(cases)))
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                index = waiting.pop(0)
                running[index] = _Child.start(context, cases[index], run_case, timeout_of)
            ready = wait([c.reader for c in running.values()], timeout=_next_check(running))
            for index, child in list(running.items()):
                result = child.result() if child.reader in ready else child.overdue()
                if result is not None:
                    results[index] = result
                    del running[index]
            while shown in results:
                if show is not None:
                    show(results[shown])
                shown += 1
    except BaseException:
        _stop(running.values())
        raise
    return [results[i] for i in range(len(cases))]


def _next_check(running: dict[int, _Child]) -> float:
    return max(0.0, min(c.deadline for c in running.values()) - time.monotonic())


class _Child:
    """One case's process and the pipe its Result comes back on."""

    def __init__(
        self, case: Case, process: ForkProcess, reader: Connection, timeout: float
    ) -> None:
        self.case = case
        self.process = process
        self.reader = reader
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout + STOP_GRACE + _MARGIN

    @classmethod
    def start(
        cls,
        context: multiprocessing.context.ForkContext,
        case: Case,
        run_case: Callable[[Case], Result],
        timeout_of: Callable[[Case], float],
    ) -> _Child:
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_child_main, args=(writer, case, run_case), name=f"runner test {case.name}"
        )
        process.start()
        writer.close()  # the child's copy is the one that matters: EOF when it is gone
        return cls(case, process, reader, timeout_of(case))

    def result(self) -> Result:
        """The Result the child sent; a bug of runner test's own in it is raised here."""
        try:
            kind, value = self.reader.recv()
        except (EOFError, OSError):
            self.process.join()
            return Result(
                self.case,
                error=f"the case's process ended without a result (exit {self.process.exitcode})",
            )
        finally:
            self.reader.close()
        self.process.join()
        if kind == "interrupted":
            raise KeyboardInterrupt
        if kind == "raised":
            raise value
        assert isinstance(value, Result)
        return replace(value, case=self.case)  # the parent's own Case, not the child's copy

    def overdue(self) -> Result | None:
        """None while the child has time left; past it, the child is killed."""
        if time.monotonic() < self.deadline:
            return None
        _kill(self.process)
        self.reader.close()
        return Result(
            self.case,
            failures=[f"timed out after {self.timeout:g}s"],
            error=f"the run did not stop within {STOP_GRACE:g}s of its timeout: its process "
            "was killed",
        )


def _child_main(writer: Connection, case: Case, run_case: Callable[[Case], Result]) -> None:
    """In the child: run the case, send back its Result (or what stopped it), exit."""
    code = 0
    try:
        try:
            message: tuple[str, object] = ("done", run_case(case))
        except KeyboardInterrupt:
            message, code = ("interrupted", None), 130
        except Exception as exc:  # a bug of runner test's own: the parent raises it
            message = ("raised", exc)
        try:
            writer.send(message)
        except Exception as exc:  # an exception that does not pickle
            writer.send(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    except BaseException:  # interrupted again, or the parent is gone: nothing left to tell
        code = 130
    finally:
        with contextlib.suppress(OSError):
            writer.close()
        os._exit(code)


def _stop(running: Iterable[_Child]) -> None:
    """SIGTERM to every child still running; wait for them (each removes its folder)."""
    children = list(running)
    for child in children:
        with contextlib.suppress(ProcessLookupError, OSError):
            if child.process.pid is not None:
                os.kill(child.process.pid, signal.SIGTERM)
    until = time.monotonic() + STOP_GRACE + _MARGIN
    for child in children:
        child.process.join(max(0.0, until - time.monotonic()))
        if child.process.exitcode is None:
            _kill(child.process)
        with contextlib.suppress(OSError):
            child.reader.close()


def _kill(process: ForkProcess) -> None:
    with contextlib.suppress(ProcessLookupError, OSError):
        process.kill()
    process.join()
