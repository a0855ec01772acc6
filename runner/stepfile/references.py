"""`steps.NAME.outputs.X` checked across files, once every step of the folder is known.

A step may read the outputs of a step in another file (another container of the Pipeline, or an
earlier step of this run), so the check waits for the whole steps folder. Validating single
files, the other steps may simply not be among them: the check runs only for whole folders.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from runner.base.errors import Problem
from runner.base.source import Document
from runner.base.words import closest
from runner.stepfile.sensitivity import SINK_REASONS, Taint, marks, sensitive_outputs

if TYPE_CHECKING:  # the checks are imported only when a file is checked
    from runner.stepfile.language import StepReference


def declared_outputs(doc: Document) -> frozenset[str]:
    """The outputs a step document declares, whatever else is wrong with it."""
    spec = doc.value.get("spec") if isinstance(doc.value, dict) else None
    outputs = spec.get("outputs") if isinstance(spec, dict) else None
    return frozenset(outputs) if isinstance(outputs, dict) else frozenset()


def reference_problems(
    refs: Iterable[StepReference],
    outputs: Mapping[str, frozenset[str]],
    taints: Mapping[str, Taint],
) -> Iterator[Problem]:
    """`outputs`: each step's name and the outputs it declares; `taints`: what makes them
    sensitive. A reference read through a value or output (`via`) was checked where that
    value reads it: here only its sensitivity counts."""
    sensitive = sensitive_outputs(taints, outputs)
    for ref in refs:
        declared = outputs.get(ref.step)
        if ref.sink is not None and marks(sensitive, (ref.step, ref.output)):
            why, hint = SINK_REASONS[ref.sink]
            shown = f"steps.{ref.step}.outputs.{ref.output}"
            what = f'"{ref.via}" is built from {shown}, which' if ref.via else f'"{shown}"'
            yield ref.doc.problem(ref.path, f"{what} is sensitive: {why}", hint, offset=ref.offset)
            continue
        if ref.via is not None:
            continue
        if declared is None:
            guess = closest(ref.step, set(outputs))
            yield ref.doc.problem(
                ref.path,
                f'no step named "{ref.step}" in the steps folder',
                f'did you mean "steps.{guess}.outputs.{ref.output}"?' if guess else None,
                offset=ref.offset,
            )
        elif ref.output not in declared:
            guess = closest(ref.output, declared)
            if guess:
                hint = f'did you mean "steps.{ref.step}.outputs.{guess}"?'
            elif declared:
                hint = f"{ref.step} declares: " + ", ".join(sorted(declared))
            else:
                hint = f"{ref.step} declares no outputs"
            yield ref.doc.problem(
                ref.path,
                f'step "{ref.step}" has no output "{ref.output}"',
                hint,
                offset=ref.offset,
            )
