"""Step outputs: computed after a step's commands, recorded for later steps and containers.

A step's `outputs:` are read from files its commands wrote (optionally through a query) or
computed by an expression. They are recorded as `/kratix/metadata/runner/outputs/STEP.json`:
the metadata folder is the one every container of a Pipeline shares, so a later `runner run`
in the same Pipeline reads them as `steps.STEP.outputs.NAME`. A sensitive output is recorded
too (the folder never leaves the pod) but marked, so every reader masks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.base.errors import CommandFailed, InvalidError, Problem
from runner.base.files import write_atomic
from runner.base.source import load_yaml_value
from runner.language.documents import secret_in
from runner.language.expressions import ExpressionError, compile_expression
from runner.language.query import QueryError, compile_jmespath, compile_query
from runner.platform.log import Logger
from runner.platform.masking import Masker
from runner.stepfile.model import Output, Step

OUTPUTS_FOLDER = Path("runner") / "outputs"  # under the metadata folder
_MAX_FILE_BYTES = 4 << 20  # an output is a value, not a payload


def outputs_file(metadata_dir: Path, step: str) -> Path:
    return metadata_dir / OUTPUTS_FOLDER / f"{step}.json"


def record(
    metadata_dir: Path, step: Step, values: Mapping[str, Any], context: Mapping[str, Any]
) -> Path:
    """Write a step's outputs for later steps and containers, those sensitive in this run
    (marked, or built from one that is) marked so."""
    marked = sensitive_names(step, context)
    sensitive = sorted(name for name in values if f"outputs.{name}" in marked)
    record = {"step": step.name, "outputs": dict(values), "sensitive": sensitive}
    path = outputs_file(metadata_dir, step.name)
    write_atomic(path, (json.dumps(record, indent=1, default=str) + "\n").encode())
    return path


class Pending(Exception):
    """A template or expression read the outputs of a step not run yet (earlier in this run,
    or, for a preview, any step that recorded nothing): what reads it is decided at its turn."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class _Outputs(Mapping[str, Any]):
    """One step's outputs as readers see them. What it recorded; any name it did not record
    is null (a step skipped or not selected records nothing, and its readers still run); or,
    for a step not run yet, Pending."""

    def __init__(self, step: str, values: Mapping[str, Any], pending: bool) -> None:
        self.step, self.recorded, self.pending = step, values, pending

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        if self.pending:
            raise Pending(self.step)
        return self.recorded.get(key)

    def __iter__(self) -> Iterator[str]:
        if self.pending:
            raise Pending(self.step)
        return iter(self.recorded)

    def __len__(self) -> int:
        return len(self.recorded)


class StepsSeen(Mapping[str, Any]):
    """`steps` as templates and expressions see it: `steps.NAME.outputs.X` for every NAME.

    `recorded`: each step's recorded outputs; `marked`: which of them are sensitive;
    `pending`: steps whose outputs are not known yet (None: every step that recorded nothing).
    """

    def __init__(
        self,
        recorded: Mapping[str, Mapping[str, Any]] | None = None,
        marked: Mapping[str, frozenset[str]] | None = None,
        pending: frozenset[str] | None = frozenset(),
    ) -> None:
        self.recorded = dict(recorded or {})
        self.marked = dict(marked or {})
        self.pending = pending

    def waiting_for(self, name: str) -> bool:
        if self.pending is None:
            return name not in self.recorded
        return name in self.pending

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, name: str) -> Any:
        outputs = self.recorded.get(name, {})
        return {"outputs": _Outputs(name, outputs, self.waiting_for(name))}

    def __iter__(self) -> Iterator[str]:
        return iter(self.recorded)

    def __len__(self) -> int:
        return len(self.recorded)

    def without(self, names: frozenset[str]) -> StepsSeen:
        """The same, the records of `names` dropped: their outputs read as null."""
        recorded = {k: v for k, v in self.recorded.items() if k not in names}
        return StepsSeen(recorded, self.marked, self.pending)

    def sensitive_values(self) -> list[Any]:
        """The recorded values marked sensitive, to teach the masker."""
        return [
            outputs[name]
            for step, outputs in self.recorded.items()
            for name in self.marked.get(step, ())
            if name in outputs
        ]


_STEPS_READ = re.compile(r"""steps\.(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_-]*))\.outputs\b""")


def steps_read(step: Step) -> set[str]:
    """The steps whose outputs a step reads, in templates or expressions (`steps.NAME.outputs`,
    `steps."NAME".outputs`): a scan of its text, so that a missing one is found before any
    command runs. (validate checks each reference exactly; this only needs the names.)"""
    found: set[str] = set()
    stack: list[Any] = [step.document.value.get("spec")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.update(a or b for a, b in _STEPS_READ.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def recorded_steps(metadata_dir: Path, pending: frozenset[str] | None = frozenset()) -> StepsSeen:
    """`steps` from what steps recorded in the metadata folder (this run's and earlier
    containers'). `pending`: steps whose outputs are not known yet; None: every step that
    recorded nothing (a preview of one step)."""
    recorded: dict[str, dict[str, Any]] = {}
    marked: dict[str, frozenset[str]] = {}
    folder = metadata_dir / OUTPUTS_FOLDER
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        name, outputs, sensitive = _read(file)
        recorded[name] = outputs
        marked[name] = frozenset(sensitive)
    return StepsSeen(recorded, marked, pending)


def _read(file: Path) -> tuple[str, dict[str, Any], list[str]]:
    """One recorded file, or exit 2 naming it: a file another container broke is not ours to
    guess at."""
    try:
        record = json.loads(file.read_bytes())
        name, outputs = record["step"], record["outputs"]
        sensitive = record.get("sensitive", [])
        if not isinstance(name, str) or not isinstance(outputs, dict):
            raise TypeError("unexpected shape")
        return name, outputs, [str(s) for s in sensitive]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not a step's outputs"
        raise InvalidError(
            f"cannot read the outputs an earlier step recorded in {file}: {reason}"
        ) from None


def sensitive_names(step: Step, context: Mapping[str, Any]) -> set[str]:
    """The step's values and outputs ("values.X", "outputs.Y") sensitive in this run: marked,
    or built from one that is, here or in a step that recorded it (runner.stepfile.sensitivity)."""
    steps = context.get("steps")
    return step.taint.sensitive(steps.marked if isinstance(steps, StepsSeen) else {})


def collect(
    step: Step,
    workdir: Path,
    context: Mapping[str, Any],
    log: Logger,
    dry_run: bool = False,
    since: float | None = None,
) -> dict[str, Any]:
    """Every output of a step whose commands succeeded (an expression sees the outputs before
    it). A file that is missing is null, with a warning, unless the output is `required`: then
    the step fails (exit 1), except in a dry run, whose commands may not have written it. In a
    dry run, a file nothing wrote since the step started (`since`, time.time(): not its
    commands, not the state's restore) is a real run's leftover, and null too. A secret's value
    in an output not marked sensitive fails it too. A sensitive output is masked from here on."""
    masker = log.masker
    sensitive = sensitive_names(step, context)
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for output in step.outputs:
        scope = {**context, "outputs": dict(values)}
        if dry_run and since is not None and _left_over(workdir, output, since):
            log.info(
                f'output "{output.name}": {output.file} was not written in this dry run '
                "(a real run left it); it is null",
                step=step.name,
            )
            values[output.name] = None
            continue
        try:
            value = _value(output, workdir, scope)
        except (ExpressionError, QueryError) as exc:
            problems.append(_problem(step, output, exc.message))
            continue
        except CommandFailed as exc:  # the file is there, but not YAML or JSON
            problems += [_problem(step, output, p.format()) for p in exc.problems]
            continue
        except FileValueError as exc:
            # A dry run may run none of the commands that write it: not knowing is no error.
            unwritten = dry_run and output.file is not None and not (workdir / output.file).exists()
            if output.required and not unwritten:
                problems.append(_problem(step, output, str(exc), "check that a command writes it"))
                continue
            log.warning(f'output "{output.name}": {exc}; it is null', step=step.name)
            values[output.name] = None
            continue
        if value is None and output.required:
            problems.append(
                _problem(step, output, f"{output.expression} found nothing in {output.file}")
            )
            continue
        if f"outputs.{output.name}" in sensitive:
            mask_value(masker, output.name, value)
        elif secret_in(value, masker) is not None:
            problems.append(
                _problem(
                    step,
                    output,
                    "holds a secret's value",
                    'mark it "sensitive: true": it is then masked, and refused in status and manifests',
                )
            )
            continue
        values[output.name] = value
    if problems:
        raise CommandFailed(*problems)
    return values


def mask_value(masker: Masker, name: str, value: Any) -> None:
    """Teach the masker every text of a sensitive value (a mapping's strings too)."""
    if isinstance(value, dict):
        for item in value.values():
            mask_value(masker, name, item)
    elif isinstance(value, list):
        for item in value:
            mask_value(masker, name, item)
    elif value is not None and not isinstance(value, bool) and str(value):
        masker.add(name, str(value))


class FileValueError(Exception):
    """A value to read from a file that is missing, too big, or not YAML/JSON."""


_CLOCK_SLACK = 1.0  # seconds: file systems whose times are coarser than the clock's


def _left_over(workdir: Path, output: Output, since: float) -> bool:
    """Whether the output's file is there but older than `since`."""
    if output.file is None:
        return False
    try:
        return (workdir / output.file).stat().st_mtime < since - _CLOCK_SLACK
    except OSError:
        return False  # missing: said as for any run


def _value(output: Output, workdir: Path, context: Mapping[str, Any]) -> Any:
    if output.file is None:
        assert output.expression is not None  # the schema and validate require one
        return compile_expression(output.expression).evaluate(context)
    if output.expression is None:
        return read_text(workdir / output.file, output.file).removesuffix("\n")
    return query_file(workdir / output.file, output.file, output.expression, output.language)


def read_text(path: Path, shown: str) -> str:
    return read_bytes(path, shown).decode("utf-8", errors="replace")


def read_bytes(path: Path, shown: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FileValueError(f"cannot read {shown}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise FileValueError(f"{shown} is larger than {_MAX_FILE_BYTES >> 20} MiB")
    return data


def query_file(path: Path, shown: str, expression: str, language: str) -> Any:
    """The value a query finds in a YAML or JSON file a command wrote (None: nothing found).

    A file that is missing or too big is a FileValueError; one that is there but not YAML or
    JSON (malformed, or beyond the limits on aliases and nesting that keep the pod within its
    memory) fails the step: CommandFailed, exit 1."""
    document, problems = load_yaml_value(read_bytes(path, shown), shown)
    if problems:
        raise CommandFailed(*problems)
    compile = compile_query if language == "query" else compile_jmespath
    return compile(expression).search(document)


def _problem(step: Step, output: Output, message: str, hint: str | None = None) -> Problem:
    return step.document.problem(output.path, f'output "{output.name}": {message}', hint)
