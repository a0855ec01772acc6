"""`runner validate` on the Promise language: values, if, outputs, manifests, destinations,
waitFor and suspend, each rule broken on purpose and reported at the right `file:line:col`."""

from __future__ import annotations

from pathlib import Path

from tests.test_validate import invalid, step, validate, where

SIZE = (
    "inputs:\n"
    "  name: { query: .metadata.name }\n"
    "  size: { query: .spec.size, default: small }\n"
    "values:\n"
    "  replicas: { from: inputs.size, map: { small: 1, large: 3 } }\n"
)


def test_a_step_using_every_field_is_valid(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "base.yaml").write_text("kind: RedisFailover\nmetadata: {name: x}\n")
    (tmp_path / "steps.d").mkdir()
    text = step(
        spec=SIZE + "  dbName: { jmespath: \"join('_', split(inputs.name, '-'))\" }\n"
        "if: \"inputs.size != ''\"\n"
        "retry: { attempts: 3, delay: 1s, backoff: 2, maxDelay: 10s }\n"
        "run:\n"
        "  - { argv: [echo, '${{ values.dbName }}'], if: 'values.replicas > `1`',"
        " retry: { attempts: 2, onExitCodes: [6, 7] } }\n"
        "outputs:\n"
        "  url: { file: out.json, query: .url }\n"
        "  ready: { jmespath: 'values.replicas > `0`' }\n"
        "  token: { file: token.txt, sensitive: true }\n"
        "manifests:\n"
        "  - path: redis/instance.yaml\n"
        "    from: ../templates/base.yaml\n"
        "    set: { .metadata.name: '${{ inputs.name }}', .spec.replicas: '${{ values.replicas }}' }\n"
        "  - path: app/cm.yaml\n"
        "    if: 'outputs.ready'\n"
        "    document: { kind: ConfigMap, data: { url: '${{ outputs.url }}' } }\n"
        "destinations:\n"
        "  - { directory: redis, matchLabels: { env: '${{ inputs.size }}' } }\n"
        "status: { url: '${{ outputs.url }}' }\n"
        "waitFor: { condition: outputs.ready, retryAfter: 30s, message: 'not ${{ values.dbName }}' }\n"
        "suspend: { if: \"inputs.size == 'huge'\", message: approval }\n"
    )
    (tmp_path / "steps.d" / "a.yaml").write_text(text)
    result = validate(tmp_path, "steps.d")
    assert result.code == 0, result.err


# -- names in templates and expressions --------------------------------------------------------


def test_an_unknown_value_in_a_template_suggests_the_closest(tmp_path: Path) -> None:
    text = step(spec=SIZE + "run: [[echo, '${{ values.replicaz }}']]\n")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{")}: spec.run[0][1]: unknown value "replicaz" in '
        "${{ values.replicaz }}",
        'did you mean "values.replicas"?',
    )


def test_a_value_read_before_it_is_computed(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { a: { query: .a } }\nvalues:\n"
        "  first: { jmespath: 'values.second' }\n  second: { from: inputs.a }\nrun: [[x]]\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "values.second")}: spec.values.first.jmespath: value "second" is '
        "computed after this one: values are computed in order",
        'move "second" above it',
    )


def test_a_lookup_from_an_unknown_input(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { size: { query: .s } }\nvalues:\n  r: { from: inputs.sise }\nrun: [[x]]\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "inputs.sise")}: spec.values.r.from: unknown input "sise" in '
        "${{ inputs.sise }}",
        'did you mean "inputs.size"?',
    )


def test_an_expression_that_does_not_parse_is_located_inside_it(tmp_path: Path) -> None:
    text = step(spec='inputs: { a: { query: .a } }\nif: "inputs.a == "\nrun: [[x]]\n')
    result = invalid(tmp_path, text)
    [line] = [x for x in result.lines if "spec.if" in x]
    assert line.startswith(f"a.yaml:{where(text, 'inputs.a ==').split(':')[0]}:")
    assert "invalid expression:" in line
    column = int(line.split(":")[2])
    assert column > int(where(text, "inputs.a ==").split(":")[1])  # inside, not at the start


def test_an_unknown_function(tmp_path: Path) -> None:
    text = step(spec="inputs: { a: { query: .a } }\nif: \"lowr(inputs.a) == 'x'\"\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    assert any("spec.if: invalid expression:" in x and "lowr" in x for x in result.lines), (
        result.err
    )


def test_an_unknown_input_in_an_expression_is_located_at_the_name(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { size: { query: .s } }\nif: \"inputs.sise == 'large'\"\nrun: [[x]]\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "inputs.sise")}: spec.if: unknown input "sise"',
        'did you mean "inputs.size"?',
    )


def test_a_command_condition_is_checked(tmp_path: Path) -> None:
    text = step(spec="run:\n  - { argv: [x], if: 'values.nope' }\n")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "values.nope")}: spec.run[0].if: unknown value "nope"',
        "no values are declared",
    )


def test_outputs_are_not_readable_before_the_commands(tmp_path: Path) -> None:
    text = step(
        spec="outputs: { url: { file: u.txt } }\nenv: { U: '${{ outputs.url }}' }\nrun: [[x]]\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{")}: spec.env.U: "outputs.url": outputs are read after the '
        "commands, not here",
        "outputs work in manifests, destinations, status, waitFor and suspend",
    )


def test_a_sensitive_output_is_refused_in_status(tmp_path: Path) -> None:
    text = step(
        spec="outputs: { token: { file: t.txt, sensitive: true } }\nrun: [[x]]\n"
        "status: { t: 'token ${{ outputs.token }}' }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{")}: spec.status.t: "outputs.token" is sensitive: it would be '
        "written to a file",
        'read it in a command\'s env: or stdin:, or drop "sensitive: true" where it is made',
    )


def test_a_sensitive_output_may_be_tested_in_a_condition(tmp_path: Path) -> None:
    text = step(
        spec="outputs: { token: { file: t.txt, sensitive: true } }\nrun: [[x]]\n"
        "waitFor: { condition: \"outputs.token != ''\" }\n"
    )
    (tmp_path / "a.yaml").write_text(text)
    assert validate(tmp_path, "a.yaml").code == 0


def test_an_unknown_template_root_lists_the_roots_of_its_place(tmp_path: Path) -> None:
    text = step(spec="run: [[x]]\nstatus: { a: '${{ output.url }}' }\n")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{")}: spec.status.a: unknown name "output.url": names start '
        "with inputs, values, outputs, kratix or steps",
        'did you mean "outputs"?',
    )


# -- values and outputs -------------------------------------------------------------------------


def test_a_value_needs_a_lookup_or_an_expression(tmp_path: Path) -> None:
    text = step(spec="values:\n  r: { default: 1 }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, 'r:')}: spec.values.r: a value needs from (a lookup) or jmespath "
        "(an expression)",
        'e.g. "{from: inputs.size, map: {small: 1, large: 3}}"',
    )


def test_a_map_goes_with_from(tmp_path: Path) -> None:
    text = step(spec="values:\n  r: { jmespath: '`1`', map: { a: 1 } }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'map')}: spec.values.r.map: map goes with from, not jmespath")


def test_an_output_needs_a_source(tmp_path: Path) -> None:
    text = step(spec="run: [[x]]\noutputs:\n  u: { sensitive: true }\n  v: { query: .a }\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, 'u:')}: spec.outputs.u: an output needs a file to read or a "
        "jmespath expression",
        'e.g. "{file: outputs.json, query: .url.value}"',
    )
    result.has(
        f"a.yaml:{where(text, 'query')}: spec.outputs.v.query: query reads a file: add file:"
    )


def test_an_output_query_into_its_file_is_parsed(tmp_path: Path) -> None:
    text = step(spec="run: [[x]]\noutputs:\n  u: { file: o.json, query: '.a[' }\n")
    result = invalid(tmp_path, text)
    assert any(line.startswith("a.yaml:8:") and "spec.outputs.u.query: invalid query" in line
               for line in result.lines), result.err  # fmt: skip


# -- manifests ----------------------------------------------------------------------------------


def test_a_manifest_takes_one_source(tmp_path: Path) -> None:
    text = step(
        spec="manifests:\n  - { path: a.yaml, document: { kind: A }, from: b.yaml }\n"
        "  - { path: b.yaml }\n"
    )
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, '{ path: a')}: spec.manifests[0]: give one of document, "
               "documents, from or file, not document and from")  # fmt: skip
    result.has(f"a.yaml:{where(text, '{ path: b')}: spec.manifests[1]: a manifest needs "
               "document, documents, from or file")  # fmt: skip


def test_set_goes_with_from_and_its_paths_parse(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("kind: A\n")
    text = step(
        spec="manifests:\n  - { path: a.yaml, document: { kind: A }, set: { .a: 1 } }\n"
        "  - { path: b.yaml, from: base.yaml, set: { '.a[': 1 } }\n"
    )
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'set')}: spec.manifests[0].set: set changes a base file: "
               "it goes with from or file")  # fmt: skip
    assert any(x.startswith(f"a.yaml:{where(text, chr(39) + '.a[')}: spec.manifests[1].set") and
               "invalid set path" in x for x in result.lines), result.err  # fmt: skip


def test_a_manifest_path_stays_in_the_output_folder(tmp_path: Path) -> None:
    text = step(
        spec="manifests:\n  - { path: ../x.yaml, document: { kind: A } }\n"
        "  - { path: /etc/x.yaml, document: { kind: A } }\n"
        "  - { path: app/, document: { kind: A } }\n"
    )
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, '../x')}: spec.manifests[0].path: manifest path "
               '"../x.yaml" is outside the output folder', 'e.g. "path: app/x.yaml"')  # fmt: skip
    result.has(f"a.yaml:{where(text, '/etc')}: spec.manifests[1].path: manifest path "
               '"/etc/x.yaml" is absolute: targets are relative to the output folder',
               'e.g. "path: app/x.yaml"')  # fmt: skip
    result.has(f"a.yaml:{where(text, 'app/')}: spec.manifests[2].path: manifest path "
               '"app/" names a folder: a manifest is a file', 'e.g. "path: app/app.yaml"')  # fmt: skip


def test_a_missing_base_file(tmp_path: Path) -> None:
    text = step(spec="manifests:\n  - { path: a.yaml, from: ../templates/nope.yaml }\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '../templates')}: spec.manifests[0].from: base file "
        '"../templates/nope.yaml" not found',
        "the path is relative to this step file's folder",
    )


def test_a_broken_base_file_is_reported_in_that_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("kind: A\nmetadata: [unclosed\n")
    text = step(spec="manifests:\n  - { path: a.yaml, from: base.yaml }\n")
    result = invalid(tmp_path, text)
    assert any(line.startswith("base.yaml:") for line in result.lines), result.err


def test_a_template_deep_in_a_document_is_checked_and_located(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { name: { query: .metadata.name } }\nmanifests:\n  - path: a.yaml\n"
        "    document:\n      metadata:\n        labels: { app: '${{ inputs.nmae }}' }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{')}: spec.manifests[0].document.metadata.labels.app: unknown "
        'input "nmae" in ${{ inputs.nmae }}',
        'did you mean "inputs.name"?',
    )


# -- destinations, waitFor, suspend, a step that does nothing ----------------------------------


def test_two_destinations_for_one_folder(tmp_path: Path) -> None:
    text = step(
        spec="run: [[x]]\ndestinations:\n  - { directory: redis, matchLabels: { a: b } }\n"
        "  - { directory: redis/, matchLabels: { c: d } }\n  - { matchLabels: { e: f } }\n"
        "  - { matchLabels: { g: h } }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "{ directory: redis/")}: spec.destinations[1]: directory "redis" '
        "is already selected by destinations[0]",
        "Kratix refuses two selectors for one folder: merge their matchLabels",
    )
    result.has(
        f"a.yaml:{where(text, '{ matchLabels: { g')}: spec.destinations[3]: the whole output is "
        "already selected by destinations[2]",
        "Kratix refuses two selectors for one folder: merge their matchLabels",
    )


def test_a_wait_condition_sees_outputs_but_checks_names(tmp_path: Path) -> None:
    text = step(
        spec="run: [[x]]\noutputs: { ready: { file: r.json, query: .ok } }\n"
        "waitFor: { condition: outputs.raedy }\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "outputs.raedy")}: spec.waitFor.condition: unknown output "raedy"',
        'did you mean "outputs.ready"?',
    )


def test_a_step_that_does_nothing(tmp_path: Path) -> None:
    text = step(spec="workdir: .\n")
    result = invalid(tmp_path, text)
    result.has(
        "a.yaml:6:3: spec: the step does nothing",
        "give it run, manifests, status, outputs, output, destinations, waitFor or suspend",
    )


# -- steps.NAME.outputs.X across files ---------------------------------------------------------


def _two_steps(tmp_path: Path, reader_spec: str) -> str:
    (tmp_path / "10-check.yaml").write_text(
        step(name="check-db", spec="run: [[x]]\noutputs: { ready: { file: r.json, query: .ok } }\n")
    )
    text = step(name="create", spec=reader_spec)
    (tmp_path / "20-create.yaml").write_text(text)
    return text


def test_a_step_output_of_another_file_is_valid(tmp_path: Path) -> None:
    _two_steps(tmp_path, "run: [[x]]\nwaitFor: { condition: 'steps.\"check-db\".outputs.ready' }\n")
    result = validate(tmp_path, ".")
    assert result.code == 0, result.err


def test_an_unknown_step_and_an_unknown_output(tmp_path: Path) -> None:
    text = _two_steps(
        tmp_path,
        "run: [[echo, '${{ steps.check-dv.outputs.ready }}']]\n"
        "status: { r: '${{ steps.check-db.outputs.raedy }}' }\n",
    )
    result = validate(tmp_path, ".")
    assert result.code == 2
    result.has(
        f"20-create.yaml:{where(text, '${{ steps.check-dv')}: spec.run[0][1]: no step named "
        '"check-dv" in the steps folder',
        'did you mean "steps.check-db.outputs.ready"?',
    )
    result.has(
        f'20-create.yaml:{where(text, "${{ steps.check-db")}: spec.status.r: step "check-db" '
        'has no output "raedy"',
        'did you mean "steps.check-db.outputs.ready"?',
    )


def test_a_step_reading_its_own_output_through_steps(tmp_path: Path) -> None:
    text = step(
        name="me",
        spec="run: [[x]]\noutputs: { u: { file: u } }\nstatus: { u: '${{ steps.me.outputs.u }}' }\n",
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "${{")}: spec.status.u: "steps.me.outputs.u" is this step\'s own '
        "output",
        'write "outputs.u"',
    )


def test_null_read_as_a_name_gets_a_hint(tmp_path: Path) -> None:
    text = step(
        spec="inputs: { x: { query: .spec.x, default: '' } }\nif: 'inputs.x == null'\nrun: [[x]]\n"
    )
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "null")}: spec.if: "null" is read as a name here, not as the value '
        "null",
        "write `null` (in backticks): a JSON literal",
    )


def test_a_step_name_with_a_dash_in_an_expression_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    text = step(spec="if: 'steps.check-db.outputs.ready'\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    assert 'hint: quote a name with "-": steps."check-db"' in result.err


def test_not_before_a_path_gets_a_hint_to_add_parentheses(tmp_path: Path) -> None:
    text = step(spec="if: '!steps.look.outputs.exists'\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    assert "!steps.look.outputs.exists applies ! to steps alone" in result.err
    assert "hint: write !(steps.look.outputs.exists)" in result.err
