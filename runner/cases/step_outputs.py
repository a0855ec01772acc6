"""case.yaml's `stepOutputs:`: the outputs of steps that ran in earlier containers.

    stepOutputs:
      create-bucket: { url: "http://minio:9000/my-app", ready: true }
    sensitiveOutputs:
      create-bucket: [url]

In a Pipeline, a container's `runner run` reads what earlier containers recorded in the shared
metadata folder (`runner/outputs/STEP.json`) as `${{ steps.STEP.outputs.NAME }}`. A case stands
for one container, so it says what the earlier ones left: the files are written, in the format
`runner run` records, into the run's fresh metadata folder before the run. A sensitive output is
masked in everything `runner test` shows and writes, as a secret of the env file is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.base.errors import Problem
from runner.base.source import Document
from runner.base.words import closest
from runner.cases.case_files import STEP_NAME

_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # as the step schema's `outputs:` keys


@dataclass(frozen=True)
class StepOutputs:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> name -> value
    sensitive: dict[str, list[str]] = field(default_factory=dict)  # step -> names

    def secrets(self) -> Iterator[tuple[str, str]]:
        """("steps.STEP.outputs.NAME", its text) for each sensitive output, to mask."""
        for step, names in self.sensitive.items():
            for name in names:
                value = self.values[step][name]
                if value is None or isinstance(value, bool):
                    continue  # nothing to hide, and masking "true" everywhere would hide a lot
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                yield f"steps.{step}.outputs.{name}", text


def read_step_outputs(doc: Document) -> tuple[StepOutputs, list[Problem]]:
    """case.yaml's `stepOutputs:` and `sensitiveOutputs:`, and a located problem for each
    thing wrong with them."""
    options = doc.value if isinstance(doc.value, dict) else {}
    values, problems = _read_values(doc, options.get("stepOutputs"))
    sensitive, found = _read_sensitive(doc, options.get("sensitiveOutputs"), values)
    return StepOutputs(values, sensitive), problems + found


def _read_values(doc: Document, raw: Any) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        example = "{create-bucket: {url: http://minio:9000}}"
        return {}, [
            doc.problem(("stepOutputs",), f"expected a mapping of step to outputs, e.g. {example}")
        ]
    values: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for step, outputs in raw.items():
        where: tuple[str, ...] = ("stepOutputs", str(step))
        if problem := _step_problem(step):
            problems.append(doc.problem(where, problem, key=True))
        elif not isinstance(outputs, dict):
            problems.append(doc.problem(where, "expected a mapping of output name to value"))
        else:
            bad = [n for n in outputs if not isinstance(n, str) or not _OUTPUT_NAME.match(n)]
            problems += [
                doc.problem((*where, str(n)), f'"{n}" is not an output name', key=True) for n in bad
            ]
            # The good names still count, so sensitiveOutputs is checked against them.
            values[step] = {n: v for n, v in outputs.items() if n not in bad}
    return values, problems


def _read_sensitive(
    doc: Document, raw: Any, values: dict[str, dict[str, Any]]
) -> tuple[dict[str, list[str]], list[Problem]]:
    """Each name must be one of the step's `stepOutputs:`: a sensitive output not given would
    mask nothing."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [
            doc.problem(
                ("sensitiveOutputs",),
                "expected a mapping of step to output names, e.g. {create-bucket: [token]}",
            )
        ]
    sensitive: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for step, names in raw.items():
        where: tuple[str | int, ...] = ("sensitiveOutputs", str(step))
        if problem := _step_problem(step):
            problems.append(doc.problem(where, problem, key=True))
            continue
        listed = names if isinstance(names, list) else [names]
        given = values.get(step, {})
        for i, name in enumerate(listed):
            at = (*where, i) if isinstance(names, list) else where
            if isinstance(name, str) and name in given:
                sensitive.setdefault(step, []).append(name)
                continue
            guess = closest(str(name), set(given))
            hint = (
                f'did you mean "{guess}"?'
                if guess
                else f"name an output given under stepOutputs.{step}"
            )
            message = f'"{name}" is not an output of stepOutputs.{step}'
            problems.append(doc.problem(at, message, hint=hint))
    return sensitive, problems


def _step_problem(step: Any) -> str | None:
    if not isinstance(step, str) or not STEP_NAME.match(step):
        return f'"{step}" is not a step name'
    return None


def write_step_outputs(outputs: StepOutputs, metadata_dir: Path) -> None:
    """Each step's outputs as `runner run` records them, under the run's metadata folder."""
    from runner.base.files import write_atomic
    from runner.resolve.step_outputs import outputs_file

    for step, values in outputs.values.items():
        record = {"step": step, "outputs": values, "sensitive": outputs.sensitive.get(step, [])}
        data = json.dumps(record, indent=1, default=str) + "\n"
        write_atomic(outputs_file(metadata_dir, step), data.encode())
