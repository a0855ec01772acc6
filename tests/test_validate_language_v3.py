"""`runner validate` on the v3 language (first part): substr and shorten, `[]` in set paths, a
literal `$${{`, nested status data, a step whose only effect is `output:`; each rule broken on
purpose and reported at its `file:line:col`."""

from __future__ import annotations

from pathlib import Path

from tests.test_validate import invalid, step, validate, where


def _valid(tmp_path: Path, text: str) -> None:
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err + result.out
    assert result.err.strip() == "" or "warning" not in result.err


def test_the_new_forms_are_valid(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("kind: MongoDBCommunity\nspec: { users: [] }\n")
    _valid(
        tmp_path,
        step(
            spec="inputs: { name: { query: .metadata.name }, port: { query: .spec.port } }\n"
            "values:\n"
            "  db: { jmespath: \"shorten(join('_', split(inputs.name, '-')), `63`)\" }\n"
            '  team: { jmespath: "substr(inputs.name, `0`, `4`)" }\n'
            '  rest: { jmespath: "substr(inputs.name, `4`)" }\n'
            "run: [[echo, '$${{ not.a.reference }}']]\n"
            "manifests:\n"
            "  - path: m.yaml\n"
            "    from: base.yaml\n"
            "    set: { '.spec.users[].passwordSecretRef.name': '${{ values.db }}' }\n"
            "  - path: cm.yaml\n"
            "    document: { kind: ConfigMap, data: { port: '${{ inputs.port }}', "
            "ci: '$${{ github.sha }}' } }\n"
            "status:\n"
            "  connection: { host: '${{ values.db }}', port: '${{ inputs.port }}', "
            "list: ['${{ values.team }}', '$${{ x }}'] }\n"
            "  url: { file: out.json, query: .url }\n"
            "  hosts: ['${{ values.db }}', replica]\n"
        ),
    )


def test_a_step_whose_only_effect_is_output_is_valid(tmp_path: Path) -> None:
    _valid(tmp_path, step(spec="output:\n  - { from: crds/, to: dependencies/ }\n"))


def test_a_misspelt_function_suggests_the_closest(tmp_path: Path) -> None:
    text = step(spec="values: { n: { jmespath: \"shortn('a', `63`)\" } }\nstatus: { n: x }\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, 'shortn(')}: spec.values.n.jmespath: invalid expression: unknown function "
        "shortn() at "
        "offset 0",
        "did you mean shorten()?",
    )


def test_substr_with_one_argument_is_located(tmp_path: Path) -> None:
    text = step(spec="values: { n: { jmespath: \"lower(substr('a'))\" } }\nstatus: { n: x }\n")
    result = invalid(tmp_path, text)
    assert (
        f"a.yaml:{where(text, 'substr(')}: spec.values.n.jmespath: invalid expression: substr() takes 2 or 3 "
        "argument(s), got 1 at offset 6" in result.err
    )


def test_a_bad_set_path_around_every_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("kind: X\n")
    text = step(
        spec="manifests:\n  - path: m.yaml\n    from: base.yaml\n    set: { '.a[x].b': 1 }\n"
    )
    result = invalid(tmp_path, text)
    assert (
        f'a.yaml:{where(text, chr(39) + ".a[x]")}: spec.manifests[0].set[".a[x].b"]: invalid '
        'set path: expected an integer index, a quoted key or "]" after "[" but found "x" at '
        "offset 3" in result.err
    )


def test_an_unknown_name_inside_nested_status_data_is_located(tmp_path: Path) -> None:
    text = step(
        spec="values: { host: { jmespath: \"'db'\" } }\n"
        "status:\n  connection: { hosts: ['${{ values.hots }}'] }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{ values.hots')}: spec.status.connection.hosts[0]: unknown value "
        '"hots" in ${{ values.hots }}',
        'did you mean "values.host"?',
    )


def test_a_misspelt_field_of_a_status_file_suggests_the_closest(tmp_path: Path) -> None:
    text = step(spec="run: [[x]]\nstatus:\n  url: { file: out.json, querry: .url }\n")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "querry")}: spec.status.url.querry: unknown field "querry"',
        'did you mean "query"?',
    )


def test_a_template_in_a_status_file_field_is_not_expanded(tmp_path: Path) -> None:
    text = step(spec="run: [[x]]\nstatus:\n  url: { file: '${{ inputs.f }}.json' }\n")
    result = invalid(tmp_path, text)
    assert (
        f"a.yaml:{where(text, '${{ inputs.f')}: spec.status.url.file: templates are not "
        "expanded here" in result.err
    )


def test_a_doubled_dollar_is_no_reference_but_a_template_beside_it_is(tmp_path: Path) -> None:
    text = step(spec="run: [[echo, '$${{ inputs.x }} ${{ inputs.nmae }}']]\n")
    result = invalid(tmp_path, text)
    assert len([line for line in result.err.splitlines() if "unknown input" in line]) == 1
    result.has(
        f'a.yaml:{where(text, "${{ inputs.nmae")}: spec.run[0][1]: unknown input "nmae" in '
        "${{ inputs.nmae }}"
    )
