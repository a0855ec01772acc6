"""Step-file expressions: the runner's functions, root names with offsets, errors, truth."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.base.source import parse_yaml
from runner.language.expressions import ExpressionError, compile_expression, truthy
from runner.language.query import QueryError
from runner.platform import kratix_yaml

CONTEXT: dict[str, Any] = {
    "inputs": {"name": "my-app-db", "size": "large", "count": 3, "padded": "  x \n", "s": ""},
    "values": {"replicas": 3, "items": [{"kind": "a", "n": 1}, {"kind": "b", "n": 2}]},
    "outputs": {},
    "steps": {"check-db": {"outputs": {"ready": True}}},
    "kratix": {"object": {"metadata": {"namespace": "team-a"}}},
}


def evaluate(text: str) -> object:
    return compile_expression(text).evaluate(CONTEXT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lower('AbC')", "abc"),
        ("upper(inputs.size)", "LARGE"),
        ("replace(inputs.name, '-', '_')", "my_app_db"),
        ("split(inputs.name, '-')", ["my", "app", "db"]),
        ("join('_', split(inputs.name, '-'))", "my_app_db"),
        ("trim(inputs.padded)", "x"),
        ("sha256('abc')", hashlib.sha256(b"abc").hexdigest()),
        ("b64encode('héllo')", base64.b64encode("héllo".encode()).decode()),
        ("b64decode('aMOpbGxv')", "héllo"),
        ("b64decode('aGVs\nbG8=')", "hello"),  # wrapped output of `base64`
        ("default(inputs.missing, 'fallback')", "fallback"),
        ("default(inputs.s, 'fallback')", ""),  # only null falls back
        ("default(`false`, 'fallback')", False),
        ("values.replicas > `1`", True),
        ('steps."check-db".outputs.ready', True),
        ("values.items[?kind == 'b'].n | [0]", 2),
    ],
)
def test_runner_functions_compute_their_values(text: str, expected: object) -> None:
    assert evaluate(text) == expected


def test_to_yaml_is_block_yaml_that_kratix_reads_back_as_the_value() -> None:
    value = {"name": "yes", "list": [1, "0x1", None], "nested": {"on": "1e3"}}
    text = compile_expression("to_yaml(@)").evaluate(value)
    assert isinstance(text, str)
    assert "{" not in text  # block style, not flow
    documents, problems = parse_yaml(text, "x", scalars=kratix_yaml.GO_YAML)
    assert not problems
    assert documents[0].value == value


def test_to_yaml_of_a_scalar_has_no_document_end_marker() -> None:
    assert evaluate("to_yaml('text')") == "text\n"
    assert evaluate("to_yaml(`3`)") == "3\n"
    assert evaluate("to_yaml('a\n...')") == "|-\n  a\n  ...\n"


@pytest.mark.parametrize(
    ("text", "path", "offset"),
    [
        ("inputs.name", ("inputs", "name"), 0),
        ('steps."check-db".outputs.ready', ("steps", "check-db", "outputs", "ready"), 0),
        ("length(values.items) > `1`", ("values", "items"), 7),
        ("@.inputs.size", ("inputs", "size"), 2),
        ("inputs.list[0].name", ("inputs", "list"), 0),
        ("inputs.list[1:2]", ("inputs", "list"), 0),
        ("inputs.list[]", ("inputs", "list"), 0),
        ("inputs.list[*].name", ("inputs", "list"), 0),
        ("sort_by(values.items, &n)", ("values", "items"), 8),
    ],
)
def test_names_are_root_paths_with_their_offsets(
    text: str, path: tuple[str, ...], offset: int
) -> None:
    names = compile_expression(text).names()
    assert [(n.path, n.offset) for n in names] == [(path, offset)]


def test_names_skip_fields_read_from_elements_and_pipes() -> None:
    text = "inputs.list[?kind == 'a' && inputs.x].name | values.y"
    names = compile_expression(text).names()
    assert [n.path for n in names] == [("inputs", "list")]


def test_names_of_operators_functions_and_multi_selects() -> None:
    text = '{k: inputs.a, "q": values.b} || [kratix.object.x, inputs.c.[d, e]] && !(inputs.f)'
    names = compile_expression(text).names()
    found = [(n.path, text[n.offset : n.offset + len(n.path[0])]) for n in names]
    assert found == [
        (("inputs", "a"), "inputs"),
        (("values", "b"), "values"),
        (("kratix", "object", "x"), "kratix"),
        (("inputs", "c", "d"), "inputs"),
        (("inputs", "c", "e"), "inputs"),
        (("inputs", "f"), "inputs"),
    ]
    assert names[5].offset == text.rindex("inputs")


def test_not_before_a_path_is_refused_with_a_hint() -> None:
    # jmespath reads `!inputs.f` as `(!inputs).f`: the .f of true or false, always null.
    with pytest.raises(ExpressionError) as raised:
        compile_expression("inputs.a && !inputs.f")
    assert raised.value.hint == "write !(inputs.f)"


def test_names_find_the_offset_of_the_right_occurrence() -> None:
    text = "values.items[?inputs == 'a'] || inputs.name"
    names = compile_expression(text).names()
    assert [(n.path, n.offset) for n in names] == [
        (("values", "items"), 0),
        (("inputs", "name"), text.rindex("inputs")),
    ]


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("", "empty expression at offset 0", 0),
        ("inputs.", "unexpected end of expression at offset 7", 7),
        ("inputs.name ==", "incomplete expression at offset 14", 14),
        ("inputs.[", "incomplete expression at offset 8", 8),
        ("nope(inputs.a)", "unknown function nope() at offset 0", 0),
        ("a || lowr(b)", "unknown function lowr() at offset 5", 5),
        ("replace(inputs.a, 'x')", "replace() takes 3 argument(s), got 2 at offset 0", 0),
    ],
)
def test_compile_errors_carry_the_offset(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert caught.value.message == message
    assert caught.value.offset == offset
    assert isinstance(caught.value, QueryError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lower(inputs.count)", "lower() expects a string, not an integer"),
        ("split(inputs.name, `1`)", "split() expects a string, not an integer"),
        ("sha256(values.items)", "sha256() expects a string, not a list"),
        ("length(`true`)", "length() expects a string, a list or a mapping, not a boolean"),
        ("b64decode('%%%')", "b64decode() was given a string that is not base64"),
        ("b64decode('/w==')", "b64decode() decoded bytes that are not UTF-8 text"),
        ("split(inputs.name, '')", "split() needs a non-empty separator"),
    ],
)
def test_runtime_errors_name_the_expression_and_the_type(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(text)
    assert caught.value.message == f"cannot evaluate {text!r}: {message}"


def test_runtime_errors_never_quote_the_value() -> None:
    secret = "s3cr3t-p4ss"
    with pytest.raises(ExpressionError) as caught:
        compile_expression("lower(inputs.x)").evaluate({"inputs": {"x": [secret]}})
    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (0.0, True),
        ("false", True),
        ([None], True),
        ({"a": None}, True),
        (True, True),
    ],
)
def test_truthy_follows_jmespath(value: object, expected: bool) -> None:
    assert truthy(value) is expected
    # the same answer jmespath gives to a filter
    assert bool(compile_expression("[?@]").evaluate([value])) is expected


def test_compile_is_cached() -> None:
    assert compile_expression("inputs.name") is compile_expression("inputs.name")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
EXPRESSIONS = [
    "lower(inputs.a)",
    "upper(inputs.a)",
    "replace(inputs.a, inputs.b, 'x')",
    "split(inputs.a, inputs.b)",
    "trim(inputs.a)",
    "sha256(inputs.a)",
    "b64encode(inputs.a)",
    "b64decode(inputs.a)",
    "to_yaml(inputs.a)",
    "default(inputs.a, inputs.b)",
    "length(inputs.a) > `1`",
    "sort(inputs.a)",
    "sort_by(inputs.a, &b)",
    "max(inputs.a)",
    "sum(inputs.a)",
    "avg(inputs.a)",
    "join(inputs.b, inputs.a)",
    "contains(inputs.a, inputs.b)",
    "starts_with(inputs.a, inputs.b)",
    "to_number(inputs.a)",
    "abs(inputs.a)",
    "floor(inputs.a)",
    "keys(inputs.a)",
    "merge(inputs.a, inputs.b)",
    "inputs.a[?b > `1`].c | [0]",
    "inputs.a < inputs.b",
    "not_null(inputs.a, inputs.b)",
    "reverse(inputs.a)",
    "map(&b, inputs.a)",
]


@settings(max_examples=300, deadline=None)
@given(a=json_values, b=json_values, text=st.sampled_from(EXPRESSIONS))
def test_evaluate_fails_only_with_expression_error(a: object, b: object, text: str) -> None:
    try:
        compile_expression(text).evaluate({"inputs": {"a": a, "b": b}})
    except ExpressionError as exc:
        assert exc.message.startswith(f"cannot evaluate {text!r}: ")


names_ = st.sampled_from(["inputs", "values", "a", '"check-db"'])
atoms = st.one_of(names_, st.sampled_from(["`1`", "'text'", "@"]))


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.tuples(inner, names_).map(lambda p: f"{p[0]}.{p[1]}"),
        inner.map(lambda e: f"{e}[0]"),
        inner.map(lambda e: f"{e}[1:2]"),
        inner.map(lambda e: f"{e}[]"),
        pair.map(lambda p: f"{p[0]}[*].{p[1]}"),
        pair.map(lambda p: f"{p[0]}[?{p[1]}].a"),
        pair.map(lambda p: f"{p[0]} | {p[1]}"),
        pair.map(lambda p: f"{p[0]} || {p[1]}"),
        pair.map(lambda p: f"({p[0]} && {p[1]})"),
        pair.map(lambda p: f"{p[0]} == {p[1]}"),
        inner.map(lambda e: f"!{e}"),
        pair.map(lambda p: f"not_null({p[0]}, {p[1]})"),
        pair.map(lambda p: f'{{k: {p[0]}, "q": {p[1]}}}'),
        pair.map(lambda p: f"[{p[0]}, {p[1]}]"),
        pair.map(lambda p: f"sort_by({p[0]}, &{p[1]})"),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(atoms, _combine, max_leaves=8))
def test_every_name_offset_points_at_its_first_name(text: str) -> None:
    try:
        compiled = compile_expression(text)
    except ExpressionError:
        return  # the grammar above also makes some expressions jmespath rejects
    for name in compiled.names():
        first = name.path[0]
        assert text.startswith((first, f'"{first}"'), name.offset), (text, name)
