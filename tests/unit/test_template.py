"""`${{ ... }}` template parsing and rendering."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.language.interpolation import Reference, TemplateError, has_template, references, render

CONTEXT: dict[str, Any] = {
    "inputs": {
        "name": "todo",
        "namespace": "team-a",
        "replicas": 3,
        "ratio": 0.5,
        "enabled": True,
        "disabled": False,
        "ports": [80, 443],
        "labels": {"tier": "gold", "app": "todo"},
        "nothing": None,
        "my-input": "dashed",
        "created": datetime.date(2024, 1, 2),
        "odd": "x; rm -rf /",
    },
    "kratix": {
        "action": "configure",
        "object": {"name": "todo", "namespace": "team-a"},
        "dirs": {"input": "/kratix/input"},
    },
}


def test_references_report_expr_and_positions() -> None:
    text = "a ${{ inputs.name }} b ${{kratix.object.namespace}}"
    found = references(text)
    assert found == [
        Reference("inputs.name", 2, 20),
        Reference("kratix.object.namespace", 23, 51),
    ]
    assert text[found[0].start : found[0].end] == "${{ inputs.name }}"
    assert text[found[1].start : found[1].end] == "${{kratix.object.namespace}}"
    assert found[0].root == "inputs"
    assert found[1].parts == ("kratix", "object", "namespace")


def test_references_accept_dashes_underscores_and_any_root() -> None:
    (ref,) = references("${{ inputs.my-input_2 }}")
    assert ref.parts == ("inputs", "my-input_2")
    assert references("${{ secrets.X }}")[0].root == "secrets"  # validate decides what's allowed


def test_text_without_templates_has_no_references() -> None:
    assert references("plain $ {{ text }} $") == []
    assert not has_template("plain $ {{ text }} $")
    assert has_template("x ${{ inputs.name }}")


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("x ${{ inputs.name", 2, 'unterminated "${{"'),
        ("${{ inputs.name } }", 0, 'unterminated "${{"'),
        ("ok ${{ }}", 3, "empty template"),
        ("${{}}", 0, "empty template"),
        ("${{ inputs.name | upper }}", 16, "only dotted names are supported"),
        ("${{ inputs.name|upper }}", 15, "only dotted names are supported"),
        ("${{ inputs. }}", 10, "only dotted names are supported"),
        ("${{ 1name }}", 4, "only dotted names are supported"),
        ("${{ inputs..name }}", 10, "only dotted names are supported"),
        ("${{ inputs.name extra }}", 16, "only dotted names are supported"),
        ("${{ inputs['name'] }}", 10, "only dotted names are supported"),
        ("${{ ${{ inputs.name }}", 4, "only dotted names are supported"),
        ("a ${{ inputs.name }} ${{ bad! }}", 28, "only dotted names are supported"),
    ],
)
def test_malformed_template_reports_offset(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        references(text)
    assert caught.value.offset == offset
    assert caught.value.text == text
    assert fragment in caught.value.message
    assert f"at offset {offset}" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("${{ inputs.name }}.${{ inputs.namespace }}", "todo.team-a"),
        ("Bucket ${{ inputs.name }} is ready", "Bucket todo is ready"),
        ("${{ inputs.replicas }}", "3"),
        ("${{ inputs.ratio }}", "0.5"),
        ("${{ inputs.enabled }}/${{ inputs.disabled }}", "true/false"),
        ("${{ inputs.ports }}", "[80,443]"),
        ("${{ inputs.labels }}", '{"tier":"gold","app":"todo"}'),
        ("[${{ inputs.nothing }}]", "[]"),
        ("${{ inputs.my-input }}", "dashed"),
        ("${{ inputs.created }}", "2024-01-02"),
        ("${{ inputs.labels.tier }}", "gold"),
        ("${{ kratix.object.namespace }}", "team-a"),
        ("${{ kratix.dirs.input }}/object.yaml", "/kratix/input/object.yaml"),
        ("${{ inputs.odd }}", "x; rm -rf /"),
        ("$${{ inputs.name }}", "${{ inputs.name }}"),  # `$${{` is a literal `${{`
        ("$${{ inputs.name }} ${{ inputs.name }}", "${{ inputs.name }} todo"),
        ("$$${{ inputs.name }}", "$todo"),
        ("$${{${{ inputs.name }}", "${{todo"),
        ("}} ${{ inputs.name }}}}", "}} todo}}"),
        ("no templates here", "no templates here"),
    ],
)
def test_render(text: str, rendered: str) -> None:
    assert render(text, CONTEXT) == rendered


def test_values_are_not_re_expanded() -> None:
    context = {"inputs": {"a": "${{ inputs.b }}", "b": "never"}}
    assert render("${{ inputs.a }}", context) == "${{ inputs.b }}"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${{ inputs.nmae }}", "inputs has no 'nmae'; did you mean inputs.name?"),
        ("${{ input.name }}", "there is no 'input'; did you mean inputs?"),
        ("${{ inputs.labels.colour }}", "inputs.labels has no 'colour'"),
        ("${{ inputs.name.first }}", "inputs.name is a string, not an object"),
        ("${{ inputs.nothing.first }}", "inputs.nothing is null, not an object"),
    ],
)
def test_missing_reference_is_an_error_naming_it(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render("x " + text, CONTEXT)
    assert fragment in caught.value.message
    assert caught.value.offset == 2
    assert text.replace("${{ ", "").split(" }}")[0] in caught.value.message


def test_missing_reference_error_never_shows_values() -> None:
    with pytest.raises(TemplateError) as caught:
        render("${{ inputs.odd.deeper }}", CONTEXT)
    assert "rm -rf" not in str(caught.value)


def test_parsing_is_cached() -> None:
    from runner.language.interpolation import _parse

    _parse.cache_clear()
    for _ in range(3):
        render("${{ inputs.name }}-x", CONTEXT)
    assert _parse.cache_info().hits >= 2


# -- properties -----------------------------------------------------------------------------

no_template = st.text().filter(lambda text: "${{" not in text)


@settings(max_examples=200, deadline=None)
@given(no_template)
def test_text_without_template_renders_unchanged(text: str) -> None:
    assert render(text, CONTEXT) == text
    assert references(text) == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


# Text before a template must not end with "$": `$${{` is the escape for a literal `${{`.
no_template_before = no_template.filter(lambda text: not text.endswith("$"))


@settings(max_examples=200, deadline=None)
@given(json_values, no_template_before, no_template)
def test_rendered_values_round_trip(value: object, before: str, after: str) -> None:
    text = before + "${{ inputs.value }}" + after
    rendered = render(text, {"inputs": {"value": value}})
    assert rendered.startswith(before) and rendered.endswith(after)
    middle = rendered[len(before) : len(rendered) - len(after)]
    if isinstance(value, str):
        assert middle == value
    elif value is None:
        assert middle == ""
    else:
        assert json.loads(middle) == value
        assert middle == json.dumps(value, separators=(",", ":"))  # compact
