"""Inputs: values taken from the request by each input's query, checked before anything runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.base.source import Document
from runner.language.interpolation import as_text
from runner.language.query import QueryError, compile_jmespath, compile_query
from runner.platform.exec_limits import MAX_ARG_STRLEN, fits_env, size_text
from runner.stepfile.model import MISSING, Input, Step, input_variable, value_variable


def resolve_inputs(step: Step, request: Document) -> dict[str, Any]:
    """Every input's value; all problems are reported together and nothing runs."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in step.inputs:
        try:
            value = query_value(item, request.value)
        except QueryError as exc:  # validate catches these; a hand-edited image might not
            problems.append(_problem(step, item, f"invalid {item.language}: {exc.message}"))
            continue
        if value is None:
            if item.default is not MISSING:
                value = item.default
            elif item.required:
                problems.append(
                    _problem(
                        step,
                        item,
                        f"{_where(item, request)} found nothing, and the input is required",
                        "set it in the request, or give the input a default",
                    )
                )
                continue
        if value is not None:
            reason = item.check(value)
            if reason:
                problems.append(_problem(step, item, f"{_where(item, request)}: {reason}"))
                continue
        values[item.name] = value
    if problems:
        raise InvalidError(*problems)
    return values


def query_value(item: Input, document: Any) -> Any:
    query = (
        compile_query(item.expression)
        if item.language == "query"
        else compile_jmespath(item.expression)
    )
    return query.search(document)


def exported(
    group: str, values: Mapping[str, Any], variable: Callable[[str], str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Each of `values` as the environment variable `variable(name)`, as text: how commands
    and scripts read inputs (`INPUT_<NAME>`) and values (`VALUE_<NAME>`); and those too large
    for Linux to pass in one environment variable ("inputs.NAME"), which are left out (every
    command would otherwise fail to start)."""
    env: dict[str, str] = {}
    left_out: list[str] = []
    for name, value in values.items():
        name_of, text = variable(name), as_text(value)
        if fits_env(name_of, text):
            env[name_of] = text
        else:
            left_out.append(f"{group}.{name}")
    return env, tuple(left_out)


def left_out_message(names: tuple[str, ...]) -> str:
    """The log line for values not exported (too large for the environment): `names` are
    "inputs.NAME" and "values.NAME"."""
    listed = ", ".join(f'"{n}" ({_variable(n)})' for n in names)
    one = len(names) == 1
    return (
        f"{listed} {'is' if one else 'are'} too large for an environment variable (Linux "
        f"passes at most {size_text(MAX_ARG_STRLEN)} in one), or {'holds' if one else 'hold'} "
        f"a NUL byte: {'it is' if one else 'they are'} "
        "not exported; a command reads such a value on its standard input "
        "(stdin: ${{ inputs.NAME }}) or from a file a manifest writes"
    )


def _variable(reference: str) -> str:
    group, _, name = reference.partition(".")
    return (input_variable if group == "inputs" else value_variable)(name)


def _where(item: Input, request: Document) -> str:
    return f"{item.language} {item.expression} in {request.file}"


def _problem(step: Step, item: Input, message: str, hint: str | None = None) -> Problem:
    return step.document.problem(
        (*item.path, item.language), f'input "{item.name}": {message}', hint
    )
