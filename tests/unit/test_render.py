"""Typed rendering of data: exact references keep their type, mixed text renders as text."""

from __future__ import annotations

from typing import Any

import pytest

from runner.language.interpolation import single_reference
from runner.language.render import RenderError, render_data

CONTEXT: dict[str, Any] = {
    "inputs": {"name": "todo", "replicas": 3, "enabled": False, "empty": None},
    "values": {"labels": {"tier": "gold"}, "ports": [80, 443], "ratio": 0.5},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ inputs.replicas }}", 3),
        ("${{inputs.enabled}}", False),
        ("${{ inputs.empty }}", None),
        ("${{ values.ratio }}", 0.5),
        ("${{ values.labels }}", {"tier": "gold"}),
        ("${{ values.ports }}", [80, 443]),
        ("${{ inputs.name }}", "todo"),
    ],
)
def test_exact_reference_keeps_the_value_type(template: str, expected: object) -> None:
    rendered = render_data({"spec": {"x": template}}, CONTEXT)
    assert rendered == {"spec": {"x": expected}}
    assert type(rendered["spec"]["x"]) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ inputs.name }}-db", "todo-db"),
        (" ${{ inputs.replicas }}", " 3"),
        ("${{ inputs.replicas }}${{ inputs.replicas }}", "33"),
        ("${{ inputs.enabled }}!", "false!"),
        ("ports=${{ values.ports }}", "ports=[80,443]"),
        ("no template", "no template"),
    ],
)
def test_mixed_text_renders_as_a_string(template: str, expected: str) -> None:
    assert render_data([template], CONTEXT) == [expected]


def test_keys_render_as_text_and_non_strings_pass_through() -> None:
    data = {"${{ inputs.replicas }}": 1, "app-${{ inputs.name }}": [True, 2.5, None]}
    assert render_data(data, CONTEXT) == {"3": 1, "app-todo": [True, 2.5, None]}


def test_rendered_values_are_copies() -> None:
    rendered = render_data({"a": "${{ values.labels }}"}, CONTEXT)
    rendered["a"]["tier"] = "changed"
    assert CONTEXT["values"]["labels"] == {"tier": "gold"}


def test_input_data_is_not_changed() -> None:
    data = {"metadata": {"name": "${{ inputs.name }}"}}
    render_data(data, CONTEXT)
    assert data == {"metadata": {"name": "${{ inputs.name }}"}}


def test_a_missing_reference_names_its_place_in_the_data() -> None:
    with pytest.raises(RenderError) as caught:
        render_data({"spec": {"items": ["ok", "${{ inputs.nmae }}"]}}, CONTEXT)
    assert caught.value.path == ("spec", "items", 1)
    assert "did you mean inputs.name?" in caught.value.message


def test_a_malformed_template_in_a_key_names_the_key() -> None:
    with pytest.raises(RenderError) as caught:
        render_data({"spec": {"${{ inputs.name ": 1}}, CONTEXT)
    assert caught.value.path == ("spec", "${{ inputs.name ")
    assert caught.value.message.startswith('unterminated "${{"')


def test_keys_that_render_to_the_same_name_are_refused() -> None:
    with pytest.raises(RenderError) as caught:
        render_data({"todo": 1, "${{ inputs.name }}": 2}, CONTEXT)
    assert caught.value.path == ("${{ inputs.name }}",)
    assert "renders to a key this mapping already has" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ inputs.name }}", "inputs.name"),
        ("${{inputs.name}}", "inputs.name"),
        (" ${{ inputs.name }}", None),
        ("${{ a }}${{ b }}", None),
        ("plain", None),
    ],
)
def test_single_reference(text: str, expected: str | None) -> None:
    ref = single_reference(text)
    assert (ref.expr if ref else None) == expected
