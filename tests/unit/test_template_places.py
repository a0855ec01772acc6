"""The one table of template places (runner/stepfile/template_places.py) against what the docs and
the schema say of them."""

from __future__ import annotations

import json
import re

import pytest

from runner.language.interpolation import TemplateError
from runner.language.render import RenderError
from runner.stepfile.template_places import ANY, BELOW, PLACES, place_of, render_at
from tests.conftest import REPO


def _docs_rows() -> dict[str, str]:
    text = (REPO / "docs" / "step-format.md").read_text()
    section = text[text.index("## Templates") :]
    rows = re.findall(r"^\| ([^|]+?) \| (before|after) the commands \| ([^|]+) \|$", section, re.M)
    return {place: when for place, when, _ in rows}


def test_the_docs_table_lists_every_place_with_its_time() -> None:
    rows = _docs_rows()
    expected = {p.shown: p.phase for p in PLACES}
    assert rows == expected


def test_the_docs_say_typed_where_the_table_renders_typed() -> None:
    text = (REPO / "docs" / "step-format.md").read_text()
    section = text[text.index("## Templates") :]
    for place in PLACES:
        row = re.search(rf"^\| {re.escape(place.shown)} \|.*\|$", section, re.M)
        assert row is not None, place.shown
        assert ("(typed)" in row.group(0)) == place.typed, place.shown


def _schema_descriptions() -> dict[tuple[str, ...], str]:
    """Each templated field's schema description, by a path of the table (items as ANY)."""
    schema = json.loads((REPO / "runner" / "stepfile" / "step.schema.json").read_text())
    defs = schema["$defs"]
    spec = defs["spec"]["properties"]
    command = next(f for f in defs["command"]["oneOf"] if "argv" in f.get("properties", {}))
    found = {
        ("spec", "workdir"): spec["workdir"]["description"],
        ("spec", "state", "name"): defs["state"]["properties"]["name"]["description"],
        ("spec", "state", "namespace"): defs["state"]["properties"]["namespace"]["description"],
        ("spec", "state", "bucket"): defs["state"]["properties"]["bucket"]["description"],
    }
    found[("spec", "manifests", ANY, "from")] = defs["manifest"]["properties"]["from"]["description"]
    output = spec["output"]["items"]["properties"]
    found[("spec", "output", ANY, "from")] = output["from"]["description"]
    for field in ("argv", "workdir", "env", "stdin"):
        found[("spec", "run", ANY, field)] = command["properties"][field]["description"]
    return found


def test_the_schema_says_templates_work_where_the_table_says() -> None:
    for path, description in _schema_descriptions().items():
        assert place_of((*path, ANY) if path[-1] in ("argv", "env") else path) is not None, path
        assert re.search(r"templat", description, re.I), (path, description)


def test_a_path_matches_its_place_and_no_other_first() -> None:
    assert place_of(("spec", "run", 0, "stdin")).sink == "stdin"  # type: ignore[union-attr]
    assert place_of(("spec", "run", 0, 1)).sink == "argv"  # type: ignore[union-attr]
    assert place_of(("spec", "manifests", 0, "document", "data", "x")).typed  # type: ignore[union-attr]
    assert place_of(("spec", "inputs", "x", "query")) is None
    assert all(p.pattern[-1] != BELOW or p.typed for p in PLACES)


def test_the_docs_say_item_and_index_where_the_table_reads_them() -> None:
    text = (REPO / "docs" / "step-format.md").read_text()
    section = text[text.index("## Templates") :]
    for place in PLACES:
        row = re.search(rf"^\| {re.escape(place.shown)} \|.*\|$", section, re.M)
        assert row is not None, place.shown
        assert ("`item`, `index`" in row.group(0)) == place.each, place.shown
        assert ("item" in place.reads) == place.each


CONTEXT = {
    "inputs": {"port": 5433, "dir": "a/b"},
    "secrets": {"TOKEN": "s3cr3t"},
    "outputs": {"n": 2},
    "item": {"name": "ann"},
}


def test_render_at_renders_as_the_place_says() -> None:
    assert render_at(("spec", "status", "port"), "${{ inputs.port }}", CONTEXT) == 5433  # typed
    assert render_at(("spec", "env", "PORT"), "${{ inputs.port }}", CONTEXT) == "5433"  # text
    with pytest.raises(TemplateError, match="/"):  # a path component
        render_at(("spec", "workdir"), "w/${{ inputs.dir }}", CONTEXT)
    assert render_at(("spec", "run", 0, "stdin"), "${{ secrets.TOKEN }}", CONTEXT) == "s3cr3t"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("spec", "run", 0, "argv", 1), "${{ secrets.TOKEN }}"),  # secrets: stdin alone
        (("spec", "env", "X"), "${{ outputs.n }}"),  # outputs: after the commands alone
        (("spec", "status", "who"), "${{ item.name }}"),  # item: in a forEach entry alone
        (("spec", "manifests", 0, "path"), "${{ secrets.TOKEN }}.yaml"),
    ],
)
def test_render_at_never_reads_a_name_its_place_may_not(path, text) -> None:
    """validate refuses these; a file that skipped validate still can't reach them."""
    with pytest.raises((TemplateError, RenderError)):
        render_at(path, text, CONTEXT)


def test_render_at_a_path_that_is_no_place_is_a_runner_bug() -> None:
    with pytest.raises(AssertionError):
        render_at(("spec", "inputs", "x", "query"), "${{ inputs.port }}", CONTEXT)
