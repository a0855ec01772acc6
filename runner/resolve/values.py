"""`values:` and conditions (`if:`, `waitFor`, `suspend`) evaluated for one request.

Values are computed in order, each seeing the inputs, `kratix`, `steps` and the values before
it. An error names the field, the expression and the type of what it met, never the value
(it may come from a secret-bearing output); raised as InvalidError (exit 2) when it is found
before any command runs, else as the caller's error type (CommandFailed, exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runner.base.errors import InvalidError, Problem, RunnerError
from runner.base.source import PathKey
from runner.base.value_types import kind_of
from runner.language.expressions import ExpressionError, compile_expression, truthy
from runner.language.foreach import ForEachError, item_context, items_of
from runner.language.interpolation import as_text
from runner.resolve.step_outputs import Pending
from runner.stepfile.model import MISSING, Step, Value


def resolve_values(step: Step, context: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every value of the step; all problems together, as InvalidError.

    A value that reads the outputs of a step not run yet (outputs.Pending) is not known yet,
    nor is one that reads it: the mapping returned raises Pending for those names, so what
    reads them is decided at its turn too.
    """
    values: dict[str, Any] = {}
    unknown: dict[str, str] = {}  # name -> the step whose outputs it waits for
    problems: list[Problem] = []
    for value in step.values:
        try:
            values[value.name] = _one(value, {**context, "values": _Known(values, unknown)})
        except Pending as exc:
            unknown[value.name] = exc.step
        except _Failed as exc:
            problems.append(
                step.document.problem(exc.path, f'value "{value.name}": {exc}', exc.hint)
            )
    if problems:
        raise InvalidError(*problems)
    return _Known(values, unknown) if unknown else values


class _Known(Mapping[str, Any]):
    """Values, some not known yet: reading one of those is Pending."""

    def __init__(self, values: dict[str, Any], unknown: dict[str, str]) -> None:
        self.known, self.unknown = values, unknown

    def __contains__(self, key: object) -> bool:
        return key in self.known or key in self.unknown

    def __getitem__(self, key: str) -> Any:
        if key in self.unknown:
            raise Pending(self.unknown[key])
        return self.known[key]

    def __iter__(self) -> Iterator[str]:
        if self.unknown:  # a read of the whole group waits for all of it
            raise Pending(next(iter(self.unknown.values())))
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known) + len(self.unknown)


def for_each_problems(step: Step, context: Mapping[str, Any], waiting: set[str]) -> list[Problem]:
    """The manifests' `forEach:` that read no outputs, checked before anything runs: each gives
    a list, a mapping or null. One that reads a step not run yet is added to `waiting`."""
    problems: list[Problem] = []
    for manifest in step.manifests:
        if manifest.for_each is None:
            continue
        where = (*manifest.path, "forEach")
        try:
            compiled = compile_expression(manifest.for_each)
            if compiled.reads_whole or any(n.path[0] == "outputs" for n in compiled.names()):
                continue  # known after the commands
            items_of(compiled.evaluate(context), manifest.for_each)
        except Pending as exc:
            waiting.add(exc.step)
        except ExpressionError as exc:
            problems.append(step.document.problem(where, exc.message))
        except ForEachError as exc:
            problems.append(step.document.problem(where, exc.message, exc.hint))
    return problems


def holds(
    step: Step,
    expression: str,
    context: Mapping[str, Any],
    path: PathKey,
    error: type[RunnerError] = InvalidError,
) -> bool:
    """Whether a condition is truthy; an expression that can't be evaluated raises `error`."""
    try:
        return truthy(compile_expression(expression).evaluate(context))
    except ExpressionError as exc:
        raise error(step.document.problem(path, exc.message)) from None


class _Failed(Exception):
    def __init__(self, message: str, path: PathKey, hint: str | None = None) -> None:
        super().__init__(message)
        self.path, self.hint = path, hint


def _one(value: Value, context: Mapping[str, Any]) -> Any:
    """The value; with `forEach`, a list of one result per item, in order."""
    if value.for_each is None:
        return _single(value, context)
    where = (*value.path, "forEach")
    try:
        found = compile_expression(value.for_each).evaluate(context)
        items = items_of(found, value.for_each)
    except ExpressionError as exc:
        raise _Failed(exc.message, where) from None
    except ForEachError as exc:
        raise _Failed(exc.message, where, exc.hint) from None
    results = []
    for index, item in enumerate(items):
        try:
            results.append(_single(value, item_context(context, item, index)))
        except _Failed as exc:
            raise _Failed(f"{exc} (item {index})", exc.path, exc.hint) from None
    return results


def _single(value: Value, context: Mapping[str, Any]) -> Any:
    if value.expression is not None:
        try:
            return compile_expression(value.expression).evaluate(context)
        except ExpressionError as exc:
            raise _Failed(exc.message, (*value.path, "jmespath")) from None
    assert value.source is not None  # validate: from or jmespath
    found = _read(value.source, context, (*value.path, "from"))
    if value.mapping is None:
        if found is None and value.default is not MISSING:
            return value.default
        return found
    key = as_text(found)
    if key in value.mapping:
        return value.mapping[key]
    if value.default is not MISSING:
        return value.default
    shown = f"{kind_of(found)} not in the map" if not isinstance(found, str) else f'"{key}"'
    raise _Failed(
        f"{value.source} is {shown}, and map has no entry for it",
        (*value.path, "from"),
        "map keys: " + ", ".join(sorted(value.mapping)) + '; or give the value a "default:"',
    )


def _read(source: str, context: Mapping[str, Any], path: PathKey) -> Any:
    """What the dotted name `source` holds in context (validate checked it is declared)."""
    found: Any = context
    parts = source.split(".")
    for i, part in enumerate(parts):
        if not isinstance(found, Mapping) or part not in found:
            owner = ".".join(parts[:i])
            why = (
                f"{owner} has no {part!r}"
                if isinstance(found, Mapping)
                else f"{owner} is {kind_of(found)}, not a mapping"
            )
            raise _Failed(f"cannot read {source}: {why}", path)
        found = found[part]
    return found
