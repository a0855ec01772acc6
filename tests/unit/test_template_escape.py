"""`$${{` is a literal `${{` wherever templates work: text, typed data, paths, validate's view."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.language.interpolation import (
    TemplateError,
    references,
    render,
    render_path,
    single_reference,
)
from runner.language.render import render_data

CONTEXT: dict[str, Any] = {"inputs": {"name": "todo", "port": 5433}}


def test_an_escaped_template_is_no_reference() -> None:
    assert references("$${{ github.sha }}") == []
    assert single_reference("$${{ inputs.port }}") is None
    [ref] = references("$${{ x }} ${{ inputs.name }}")
    assert (ref.expr, ref.start) == ("inputs.name", 10)  # offsets stay those of the raw text


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("$${{ inputs.name }}", "${{ inputs.name }}"),
        ("$$${{ inputs.name }}", "$todo"),  # `$$` is one `$`, then the template
        ("$$$${{ inputs.name }}", "$${{ inputs.name }}"),
        ("cost: $${{ inputs.name }} or $ ${{ inputs.name }}", "cost: ${{ inputs.name }} or $ todo"),
        ("$$ {{ x }} $$", "$$ {{ x }} $$"),  # `$$` elsewhere is just text
    ],
)
def test_doubled_dollars_before_braces_stand_for_one(text: str, rendered: str) -> None:
    assert render(text, CONTEXT) == rendered


def test_an_escaped_template_needs_no_closing_and_may_hold_anything() -> None:
    assert render("$${{ not a name", CONTEXT) == "${{ not a name"
    assert render("$${{ a | b }}", CONTEXT) == "${{ a | b }}"


def test_typed_rendering_keeps_the_literal_as_text() -> None:
    data = {"port": "${{ inputs.port }}", "ci": "$${{ inputs.port }}", "$${{ k }}": 1}
    assert render_data(data, CONTEXT) == {"port": 5433, "ci": "${{ inputs.port }}", "${{ k }}": 1}


def test_a_path_renders_the_literal_and_still_checks_the_values() -> None:
    assert render_path("out/$${{ x }}-${{ inputs.name }}.yaml", CONTEXT) == "out/${{ x }}-todo.yaml"
    with pytest.raises(TemplateError):
        render_path("$${{ x }}/${{ inputs.slash }}", {"inputs": {"slash": "a/b"}})


def escape(text: str) -> str:
    """How an author writes a literal text where templates work: each `$` before `{{` doubled."""
    return re.sub(r"(\$+)(?=\{\{)", lambda found: found.group(1) * 2, text)


@given(st.text(alphabet="${} ab", max_size=30))
def test_any_literal_text_survives_escaping_and_rendering(text: str) -> None:
    assert render(escape(text), CONTEXT) == text
    assert references(escape(text)) == []
    assert render_path(escape(text), CONTEXT) == text


@given(st.text(alphabet="${} ab", max_size=20), st.text(alphabet="${} ab", max_size=20))
def test_an_escaped_literal_beside_a_template_renders_both(before: str, after: str) -> None:
    # The `$`s right before the template's own `${{` are doubled too.
    head = re.sub(r"(\$+)$", lambda found: found.group(1) * 2, escape(before))
    text = head + "${{ inputs.name }}" + escape(after)
    assert render(text, CONTEXT) == before + "todo" + after
