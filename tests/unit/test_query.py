"""yq-style query translation, compilation and evaluation."""

from __future__ import annotations

import json
from typing import Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.language.query import (
    Query,
    QueryError,
    compile_jmespath,
    compile_query,
    parse_jmespath,
    path_segments,
    translate,
)

REQUEST: dict[str, Any] = {
    "apiVersion": "marketplace.kratix.io/v1alpha1",
    "kind": "App",
    "metadata": {
        "name": "todo",
        "namespace": "team-a",
        "labels": {"app.kubernetes.io/name": "todo-app", "tier": "gold"},
        "annotations": {},
    },
    "spec": {
        "tier": "small",
        "replicas": 2,
        "my-field": "dashed",
        "1x": "digit-first",
        "enabled": False,
        "empty": "",
        "buckets": [{"name": "logs", "size": 1}, {"name": "data"}],
        "ports": [80, 443],
        "it's": "quoted",
    },
}

TRANSLATIONS = [
    # (yq-style, JMESPath, result on REQUEST)
    (".", "@", REQUEST),
    (".metadata.name", '"metadata"."name"', "todo"),
    (".metadata.namespace", '"metadata"."namespace"', "team-a"),
    (
        '.metadata.labels."app.kubernetes.io/name"',
        '"metadata"."labels"."app.kubernetes.io/name"',
        "todo-app",
    ),
    (
        '.metadata.labels["app.kubernetes.io/name"]',
        '"metadata"."labels"."app.kubernetes.io/name"',
        "todo-app",
    ),
    (".metadata.labels['tier']", '"metadata"."labels"."tier"', "gold"),
    (".spec.my-field", '"spec"."my-field"', "dashed"),
    (".spec.1x", '"spec"."1x"', "digit-first"),
    ('.spec["it\'s"]', '"spec"."it\'s"', "quoted"),
    (".spec.ports[0]", '"spec"."ports"[0]', 80),
    (".spec.ports[-1]", '"spec"."ports"[-1]', 443),
    (".spec.ports[ 1 ]", '"spec"."ports"[1]', 443),
    (".spec.ports[5]", '"spec"."ports"[5]', None),
    (".spec.ports[]", '"spec"."ports"[*]', [80, 443]),
    (".spec.buckets[].name", '"spec"."buckets"[*]."name"', ["logs", "data"]),
    (".spec.buckets[].size", '"spec"."buckets"[*]."size"', [1]),
    (".spec.buckets[1].name", '"spec"."buckets"[1]."name"', "data"),
    (".spec.buckets.[0].name", '"spec"."buckets"[0]."name"', "logs"),
    (".spec.missing", '"spec"."missing"', None),
    (".nope.deeper[0].x", '"nope"."deeper"[0]."x"', None),
    ('.spec.tier // "large"', '"spec"."tier" || \'large\'', "small"),
    ('.spec.size // "small"', '"spec"."size" || \'small\'', "small"),
    (".spec.size // 'small'", '"spec"."size" || \'small\'', "small"),
    (".spec.size//'small'", '"spec"."size" || \'small\'', "small"),
    (".spec.size // 3", '"spec"."size" || `3`', 3),
    (".spec.size // -1.5", '"spec"."size" || `-1.5`', -1.5),
    (".spec.size // true", '"spec"."size" || `true`', True),
    (".spec.size // null", '"spec"."size" || `null`', None),
    (".spec.size // .metadata.name", '"spec"."size" || "metadata"."name"', "todo"),
    ('.a // .b // "c"', '"a" || "b" || \'c\'', "c"),
    ('.spec.x // "it\'s"', '"spec"."x" || `"it\'s"`', "it's"),
    (
        '.spec.x // "back\\\\slash`tick"',
        '"spec"."x" || `"back\\\\slash\\u0060tick"`',
        "back\\slash`tick",
    ),
    # JMESPath's || also replaces false and empty strings (yq's // only null and false).
    ('.spec.enabled // "yes"', '"spec"."enabled" || \'yes\'', "yes"),
    ('.spec.empty // "filled"', '"spec"."empty" || \'filled\'', "filled"),
    ("  .metadata.name  ", '"metadata"."name"', "todo"),
    (".[0]", "[0]", None),
]


@pytest.mark.parametrize(("yq", "expected_jmespath", "result"), TRANSLATIONS)
def test_translation_and_result_on_a_kratix_request(
    yq: str, expected_jmespath: str, result: object
) -> None:
    assert translate(yq) == expected_jmespath
    query = compile_query(yq)
    assert query.source == yq
    assert query.jmespath == expected_jmespath
    assert query.search(REQUEST) == result


ERRORS = [
    # (query, offset, fragment of the message)
    ("", 0, "empty query"),
    ("   ", 3, "empty query"),
    ("metadata.name", 0, 'expected "." but found "m"'),
    (".metadata.", 10, 'expected a key after "."'),
    (".metadata..name", 10, 'expected a key after "."'),
    ("..", 1, 'expected a key after "."'),
    ('.a["key', 3, "unterminated string"),
    (".a['key", 3, "unterminated string"),
    ('.a."key', 3, "unterminated string"),
    (".a[", 3, 'unclosed "[" (opened at offset 2)'),
    (".a[0", 4, 'unclosed "[" (opened at offset 2)'),
    ('.a["k"', 6, 'unclosed "["'),
    (".a[x]", 3, "expected an integer index"),
    (".a[1.5]", 3, "expected an integer index"),
    (".a[-]", 3, "expected an integer index"),
    ('.a[0 "x"]', 5, 'expected "]"'),
    ('.a[""]', 3, 'empty key ""'),
    ('.a.""', 3, 'empty key ""'),
    (".a.b )", 5, 'unexpected ")"'),
    (".a.b | upper", 5, 'unexpected "|"'),
    (".a / .b", 3, 'unexpected "/"'),
    (".a$b", 2, 'unexpected "$"'),
    (".a[0]b", 5, 'expected "." or "["'),
    (".a //", 5, 'expected a path or a literal after "//"'),
    (".a // small", 6, 'but found "small"'),
    (".a // 1x", 6, 'invalid number "1x"'),
    (".a // 1.", 8, "expected digits after the decimal point"),
    (".a // 1e999", 6, "number out of range"),
    ('.a // "\\q"', 7, "invalid escape"),
    (".a // .b.", 9, 'expected a key after "."'),
]


@pytest.mark.parametrize(("expr", "offset", "fragment"), ERRORS)
def test_bad_query_reports_offset(expr: str, offset: int, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        compile_query(expr)
    error = caught.value
    assert error.offset == offset
    assert error.expression == expr
    assert fragment in error.message
    assert f"at offset {offset}" in str(error)


def test_error_message_is_exact_and_points_where_the_key_should_be() -> None:
    with pytest.raises(QueryError, match=r'^expected a key after "\." at offset 10$'):
        translate(".metadata.")


def test_caret_points_at_offset() -> None:
    with pytest.raises(QueryError) as caught:
        translate(".a.b )")
    assert caught.value.caret() == ".a.b )\n     ^"


def test_compile_query_is_cached() -> None:
    assert compile_query(".metadata.name") is compile_query(".metadata.name")


def test_query_is_a_frozen_value() -> None:
    query = compile_query(".spec.tier")
    with pytest.raises(AttributeError):
        query.source = ".x"  # type: ignore[misc]
    assert isinstance(query, Query)
    assert "spec" in repr(query)


# -- raw JMESPath ---------------------------------------------------------------------------


def test_compile_jmespath_evaluates_raw_expressions() -> None:
    query = compile_jmespath("metadata.labels")
    assert query.source == query.jmespath == "metadata.labels"
    assert query.search(REQUEST) == REQUEST["metadata"]["labels"]
    assert compile_jmespath("spec.buckets[?size].name").search(REQUEST) == ["logs"]
    assert compile_jmespath("length(spec.ports)").search(REQUEST) == 2


JMESPATH_ERRORS = [
    ("metadata.", 9, "unexpected end of expression"),
    ("a b", 2, 'unexpected "b"'),
    ('"abc', 0, 'unclosed " delimiter'),
    ("a[", 2, "incomplete expression"),
    ("", 0, "empty expression"),
    ("lenght(@)", 0, "unknown function lenght()"),
    ("a || length(@, @)", 5, "length() takes 1 argument(s), got 2"),
    ("not_null()", 0, "takes at least 1 argument(s), got 0"),
]


@pytest.mark.parametrize(("expr", "offset", "fragment"), JMESPATH_ERRORS)
def test_bad_jmespath_reports_offset(expr: str, offset: int, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        compile_jmespath(expr)
    assert caught.value.offset == offset
    assert fragment in caught.value.message


def test_jmespath_runtime_type_error_is_a_query_error() -> None:
    query = compile_jmespath("abs(metadata.name)")
    with pytest.raises(QueryError, match="cannot evaluate"):
        query.search(REQUEST)


# -- properties -----------------------------------------------------------------------------

ALL = object()  # the `[]` step

scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
keys = st.text(min_size=1, max_size=6)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def walk(value: object, steps: list[object]) -> object:
    """What a path selects, with JMESPath projection semantics (nulls dropped from `[]`)."""
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step is ALL:
        if not isinstance(value, list):
            return None
        found = [walk(item, rest) for item in value]
        return [item for item in found if item is not None]
    if isinstance(step, int):
        if not isinstance(value, list) or not -len(value) <= step < len(value):
            return None
        return walk(value[step], rest)
    if not isinstance(value, dict) or step not in value:
        return None
    return walk(value[step], rest)


def render_key(key: str, style: int) -> str:
    """One yq spelling of a key step (several are equivalent)."""
    bare = all(ch.isalnum() or ch in "_-" for ch in key)
    if style == 0 and bare:
        return "." + key
    if style == 1 and "'" not in key:
        return f"['{key}']"
    if style == 2:
        return "." + json.dumps(key)
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


@st.composite
def document_and_path(draw: st.DrawFn) -> tuple[object, str, list[object]]:
    """A document, a yq path into it (mostly along existing keys) and the path's steps."""
    doc = draw(st.dictionaries(keys, documents, min_size=1, max_size=4))
    steps: list[object] = []
    text = ""
    value: object = doc
    for _ in range(draw(st.integers(1, 5))):
        roll = draw(st.integers(0, 9))
        if not isinstance(value, (dict, list)) and steps and roll < 8:
            break  # mostly stop at a leaf so most paths select something
        if isinstance(value, dict) and value and roll < 8:
            key = draw(st.sampled_from(sorted(value)))
        elif isinstance(value, list) and value and roll < 8:
            choice = draw(st.integers(0, 2))
            if choice == 0:
                steps.append(ALL)
                text += "[]"
                value = value[0]
                continue
            index = draw(st.integers(0, len(value) - 1))
            steps.append(index - len(value) if choice == 2 else index)
            text += f"[{steps[-1]}]"
            value = value[index]
            continue
        elif roll < 9:
            key = draw(keys)  # usually missing
        else:
            index = draw(st.integers(-10, 10))
            steps.append(index)
            text += f"[{index}]"
            value = None
            continue
        steps.append(key)
        text += render_key(key, draw(st.integers(0, 3)))
        value = value.get(key) if isinstance(value, dict) else None
    if not text.startswith("."):
        text = "." + text
    return doc, text, steps


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document_and_path())
def test_query_selects_what_walking_the_path_selects(
    case: tuple[object, str, list[object]],
) -> None:
    doc, path, steps = case
    assert compile_query(path).search(doc) == walk(doc, steps)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.text(alphabet=".[]\"'-/ a1\\`0e", max_size=20))
def test_random_text_never_raises_anything_but_query_error(text: str) -> None:
    try:
        source = translate(text)
    except QueryError as error:
        assert error.offset is not None and 0 <= error.offset <= len(text)
        return
    jmespath.compile(source)  # whatever translate emits must be valid JMESPath
    compile_query(text)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # jmespath's `legacy` literals
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30) | st.text(alphabet="ab.[]()|&`'\"*?@,:!<=>0-{} ", max_size=20))
def test_random_jmespath_never_raises_anything_but_query_error(text: str) -> None:
    try:
        compile_jmespath(text)
    except QueryError as error:
        assert error.offset is None or 0 <= error.offset <= len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text(max_size=3)))
def test_string_literal_default_round_trips(literal: str, present: str | None) -> None:
    query = compile_query(".value // " + json.dumps(literal))
    expected = present if present else literal  # JMESPath || treats "" like null
    assert query.search({"value": present}) == expected


def test_parse_jmespath_checks_functions_against_the_table_given() -> None:
    from jmespath import functions

    class Extra(functions.Functions):
        @functions.signature({"types": ["string"]})
        def _func_shout(self, s: str) -> str:
            return s.upper()

    with pytest.raises(QueryError, match=r"unknown function shout\(\) at offset 0"):
        parse_jmespath("shout(a)")
    parsed = parse_jmespath("shout(a)", Extra.FUNCTION_TABLE)
    options = jmespath.Options(custom_functions=Extra())
    assert parsed.search({"a": "hi"}, options=options) == "HI"


def test_path_segments_keeps_offsets_and_marks_every_item() -> None:
    assert path_segments('.a[0]."b.c"[]') == [("a", 1), (0, 2), ("b.c", 6), (None, 11)]
