"""`render_path`: a value rendered into a path template stays inside one path component."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runner.language.interpolation import TemplateError, render_path


def test_values_fill_components_and_literal_parts_are_the_authors():
    context = {"inputs": {"size": "small", "n": 3, "none": None}}
    assert render_path("../modules/${{ inputs.size }}", context) == "../modules/small"
    assert render_path("../a/../m/x-${{ inputs.size }}-${{ inputs.n }}", context) == (
        "../a/../m/x-small-3"
    )
    assert render_path("mods/${{ inputs.none }}", context) == "mods/"
    assert render_path("plain/../path", context) == "plain/../path"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("../victim", 'renders a value that holds "/"'),
        ("/etc", 'renders a value that holds "/"'),
        ("..", 'renders a value that is ".."'),
        (".", 'renders a value that is "."'),
        ("a\0b", "renders a value that holds a NUL character"),
        (["a", "b/c"], 'renders a value that holds "/"'),  # JSON text of a list
    ],
)
def test_a_value_that_would_move_the_path_is_refused(value, problem):
    text = "x/${{ inputs.v }}"
    with pytest.raises(TemplateError) as caught:
        render_path(text, {"inputs": {"v": value}})
    assert caught.value.message == (
        f'${{{{ inputs.v }}}} in "{text}" {problem}: a templated value in a path must be one '
        'path component, without "/", NUL, or being "." or ".."'
    )
    assert caught.value.offset == 2


def test_an_unknown_reference_is_reported_as_by_render():
    with pytest.raises(TemplateError, match="unknown reference"):
        render_path("x/${{ inputs.nope }}", {"inputs": {}})


@given(
    st.text(st.sampled_from("ab./\0-"), max_size=8),
    st.sampled_from(["", ".", "x-", "..", "-y"]),
    st.sampled_from(["", ".", "-z", ".."]),
)
@example(".", ".", "")  # ".${{ v }}" with "." would be ".."
@example("..", "", "")
def test_a_rendered_value_never_leaves_its_component(value, before, after):
    text = f"base/{before}${{{{ inputs.v }}}}{after}/end"
    try:
        rendered = render_path(text, {"inputs": {"v": value}})
    except TemplateError:
        assert "/" in value or "\0" in value or value in (".", "..")
        return
    literal = f"base/{before}{after}/end"
    # The value changes only the component it is in: never how many there are, and never
    # makes one of them "." or ".." that the author did not write.
    assert rendered.count("/") == literal.count("/")
    middle = rendered.split("/")[1]
    assert middle not in (".", "..") or before + after == middle
    if before + after != "..":  # the author's own ".." may climb; a value never does
        assert posixpath.normpath(rendered).startswith("base")
