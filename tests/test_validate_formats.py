"""`runner validate --format github`: one GitHub Actions annotation per problem, escaped as the
Actions toolkit escapes workflow commands."""

from __future__ import annotations

import re

from tests.test_validate import step, validate, where

ANNOTATION = re.compile(r"^::error (?P<properties>[^:]*)::(?P<message>.*)$")


def annotations(out: str) -> list[tuple[dict[str, str], str]]:
    """Each `::error k=v,...::message` line, its properties split (values still escaped)."""
    found = []
    for line in out.splitlines():
        match = ANNOTATION.match(line)
        assert match, f"not an annotation: {line!r}"
        properties = dict(p.split("=", 1) for p in match["properties"].split(","))
        found.append((properties, match["message"]))
    return found


def test_each_problem_is_one_error_annotation_with_file_line_and_column(tmp_path):
    text = step(
        spec="""
        workdri: x
        run: [[echo, "${{ inputs.nmae }}"]]
    """
    )
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "--format", "github", "a.yaml")
    assert result.code == 2
    found = annotations(result.out)
    assert len(found) == 2, result.out
    (first, message), (second, _) = found
    line, col = where(text, "workdri").split(":")
    assert first == {"file": "a.yaml", "line": line, "col": col, "title": "runner validate"}
    # The document path leads the message; the hint is its second line (%0A).
    assert message == 'spec.workdri: unknown field "workdri"%0Ahint: did you mean "workdir"?'
    assert second["line"] == where(text, "${{").split(":")[0]
    assert "invalid: 2 problems (1 file checked)" in result.err


def test_percent_colons_and_commas_are_escaped(tmp_path):
    # A file name with `,` or `:` would otherwise end the property list or the command.
    name = "odd,name:1.yaml"
    text = step(
        spec="""
        state: {store: "100%", files: [{path: a}]}
        run: [[echo, hi]]
    """
    )
    (tmp_path / name).write_text(text)
    result = validate(tmp_path, "--format", "github", name)
    assert result.code == 2
    [(properties, message)] = annotations(result.out)
    assert properties["file"] == "odd%2Cname%3A1.yaml"
    assert [properties["line"], properties["col"]] == where(text, '"100%"').split(":")
    assert message.startswith('spec.state.store: "100%25" is not one of')


def test_a_problem_without_a_line_names_only_its_file(tmp_path):
    result = validate(tmp_path, "--format", "github", "missing.yaml")
    assert result.code == 2
    [(properties, message)] = annotations(result.out)
    assert properties == {"file": "missing.yaml", "title": "runner validate"}
    assert message == "no such file or directory"


def test_carriage_returns_and_newlines_in_messages_and_properties_are_escaped():
    from runner.base.errors import Problem
    from runner.verbs.validate import github_annotation

    odd = Problem("two\r\nlines, 100%", "a\n,b:c.yaml", 3, 4, "spec.x")
    assert github_annotation(odd) == (
        "::error file=a%0A%2Cb%3Ac.yaml,line=3,col=4,title=runner validate::"
        "spec.x: two%0D%0Alines, 100%25"
    )
    assert github_annotation(Problem("no place")) == "::error title=runner validate::no place"


def test_valid_files_print_no_annotation(tmp_path):
    (tmp_path / "a.yaml").write_text(step())
    result = validate(tmp_path, "--format", "github", "a.yaml")
    assert result.code == 0
    assert "::" not in result.out
    assert "ok: 1 step in 1 file" in result.out
