"""`runner validate`: each rule, broken on purpose, reported at the right `file:line:col`.

Every test runs the command line (`cli.main`, in process: ~90 interpreter start-ups saved) in a
temporary folder so paths print relative, and `validate()` asserts on every run that no
traceback reached the user. The tests marked `BOTH_WAYS` also run the real entry point,
`python -m runner`, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Completed, runner_in_process

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "validate"
HEADER = "apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\n"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.splitlines()

    def has(self, line: str, hint: str | None = None) -> None:
        """`line` is one of the problems reported; `hint`, when given, is the line after it."""
        assert line in self.lines, f"{line!r} not in:\n{self.err}"
        if hint is not None:
            after = self.lines[self.lines.index(line) + 1]
            assert after == f"  hint: {hint}", f"after {line!r}:\n{self.err}"


def runner_in_subprocess(
    argv: Sequence[str], cwd: Path, environ: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m runner ARGV` in `cwd`: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=environ,
    )  # fmt: skip


Runner = Callable[
    [Sequence[str], Path, Mapping[str, str]], Completed | subprocess.CompletedProcess[str]
]
BOTH_WAYS = pytest.mark.parametrize(
    "runner", [runner_in_process, runner_in_subprocess], ids=["in-process", "subprocess"]
)


def validate(
    cwd: Path, *args: str, env: dict[str, str] | None = None, runner: Runner = runner_in_process
) -> Result:
    """Run `runner validate ARGS` in `cwd`; never a traceback, always 0 or 2."""
    environ = {k: v for k, v in os.environ.items() if k != "RUNNER_STEPS_DIR"}
    environ.update(env or {})
    proc = runner(["validate", *args], cwd, environ)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    assert "internal error" not in proc.stderr + proc.stdout
    assert proc.returncode in (0, 2), proc.stderr
    return Result(proc.returncode, proc.stdout, proc.stderr)


def step(name: str = "demo", spec: str = "run:\n  - [echo, hi]\n", metadata: str = "") -> str:
    """A step file's text: `spec` is the YAML under `spec:` (dedented), indented for you."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"{HEADER}metadata:\n  name: {name}\n{metadata}spec:\n{body}\n"


def where(text: str, needle: str) -> str:
    """`LINE:COL` of the first `needle` in `text`: the expected location, found independently."""
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def invalid(
    tmp_path: Path, text: str, *args: str, file: str = "a.yaml", runner: Runner = runner_in_process
) -> Result:
    """Write `text` to `file`, validate it, and expect exit 2."""
    (tmp_path / file).write_text(text)
    result = validate(tmp_path, file, *args, runner=runner)
    assert result.code == 2, result.err + result.out
    return result


# -- the schema -------------------------------------------------------------------------------


@BOTH_WAYS
def test_an_unknown_field_names_the_closest_field(tmp_path, runner):
    result = invalid(tmp_path, step(metadata="  descripton: a typo\n"), runner=runner)
    result.has('a.yaml:5:3: metadata.descripton: unknown field "descripton"',
               'did you mean "description"?')


def test_an_unknown_field_with_no_close_match_lists_the_known_fields(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\nzzz: 1\n"))
    result.has(
        'a.yaml:7:3: spec.zzz: unknown field "zzz"',
        "known fields: copyWorkdir, destinations, dryRun, env, if, inputs, manifests, on, output, "
        "outputs, params, retry, run, secrets, state, status, suspend, timeout, uses, values, "
        "waitFor, with, workdir",
    )


def test_a_missing_required_field(tmp_path):
    result = invalid(tmp_path, step(spec="manifests:\n  - document: {kind: ConfigMap}\n"))
    result.has('a.yaml:7:7: spec.manifests[0]: missing required field "path"')


def test_several_missing_fields_are_one_problem(tmp_path):
    result = invalid(tmp_path, "kind: Step\n")
    result.has('a.yaml:1:1: missing required fields "apiVersion", "metadata", "spec"')
    assert len([line for line in result.lines if "missing" in line]) == 1


def test_a_wrong_type(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\ncopyWorkdir: 'yes'\n"))
    result.has("a.yaml:7:16: spec.copyWorkdir: expected a boolean, got a string")


def test_an_empty_value_says_it_is_null(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\ninputs:\n"))
    result.has("a.yaml:7:10: spec.inputs: expected a mapping, got null", "the value is empty (null)")


def test_a_bad_enum_value(tmp_path):
    spec = "run: [[echo]]\nstate: { store: configmaps, files: [{path: x}] }\n"
    result = invalid(tmp_path, step(spec=spec))
    result.has(
        'a.yaml:7:19: spec.state.store: "configmaps" is not one of "configmap", "secret", '
        '"local", "s3", "none"',
        'did you mean "configmap"?',
    )


def test_a_bad_action_in_a_list_names_the_item(tmp_path):
    result = invalid(tmp_path, step(spec="on:\n  action: [configure, delet]\nrun: [[echo]]\n"))
    result.has('a.yaml:7:25: spec.on.action[1]: "delet" is not one of "configure", "delete"',
               'did you mean "delete"?')


def test_a_bad_single_action(tmp_path):
    result = invalid(tmp_path, step(spec="on: { action: confgure }\nrun: [[echo]]\n"))
    result.has('a.yaml:6:17: spec.on.action: "confgure" is not one of "configure", "delete"',
               'did you mean "configure"?')


def test_an_action_listed_twice(tmp_path):
    result = invalid(tmp_path, step(spec="on: { action: [delete, delete] }\nrun: [[echo]]\n"))
    result.has('a.yaml:6:26: spec.on.action[1]: "delete" is listed twice')


def test_a_wrong_api_version(tmp_path):
    text = step().replace("runner.kratix.dev/v1alpha1", "runner.kratix.dev/v1")
    result = invalid(tmp_path, text)
    result.has('a.yaml:1:13: apiVersion: must be "runner.kratix.dev/v1alpha1", not '
               '"runner.kratix.dev/v1"')


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Create_Bucket", '"Create_Bucket" must be a DNS-1123 label: lowercase letters, digits '
                          "and '-', starting and ending with a letter or digit"),
        ("-bucket", '"-bucket" must be a DNS-1123 label: lowercase letters, digits and \'-\', '
                    "starting and ending with a letter or digit"),
        ("b" * 64, '"bbbbbbbbbbbbbbbbbbbbbbbbb..." is longer than 63 characters (64)'),
    ],
    ids=["underscore", "leading-dash", "too-long"],
)
def test_a_step_name_must_be_a_dns_label(tmp_path, name, message):
    result = invalid(tmp_path, step(name=f'"{name}"'))
    result.has(f"a.yaml:4:9: metadata.name: {message}")


def test_a_bad_duration(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\ntimeout: 10x\n"))
    result.has('a.yaml:7:12: spec.timeout: "10x" must be a duration like 30s, 10m, 1h30m or 500ms')


def test_a_negative_duration(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\ntimeout: -5\n"))
    result.has("a.yaml:7:12: spec.timeout: must be greater than 0, not -5")


def test_argv_and_script_together(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - { argv: [make], script: make }\n"))
    result.has("a.yaml:7:7: spec.run[0]: use only one of argv, script",
               "argv runs a program directly; script runs bash")


def test_a_command_written_as_one_string(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - terraform init\n"))
    result.has(
        "a.yaml:7:7: spec.run[0]: expected a command (a list or a mapping), got a string",
        'write the command as a list of arguments, e.g. [terraform, init], or use '
        '{script: "..."} for shell text',
    )


def test_a_command_mapping_without_argv_or_script(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - { workdir: x }\n"))
    result.has("a.yaml:7:7: spec.run[0]: a command needs argv or script",
               'e.g. {argv: [terraform, init]} or {script: "..."}')


def test_a_typo_in_a_command_mapping(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - { agrv: [make] }\n"))
    result.has('a.yaml:7:9: spec.run[0].agrv: unknown field "agrv"', 'did you mean "argv"?')


def test_an_error_inside_a_command_mapping_points_inside_it(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - { argv: [make], stdout: 5, timeout: 1x }\n"))
    result.has("a.yaml:7:31: spec.run[0].stdout: expected a string, got an integer")
    result.has('a.yaml:7:43: spec.run[0].timeout: "1x" must be a duration like 30s, 10m, 1h30m '
               "or 500ms")


def test_an_empty_argv(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - []\n  - { argv: [] }\n"))
    result.has("a.yaml:7:7: spec.run[0]: must not be empty")
    result.has("a.yaml:8:15: spec.run[1].argv: must not be empty")


def test_query_and_jmespath_together(tmp_path):
    spec = "inputs:\n  n: { query: .a, jmespath: a }\nrun: [[echo]]\n"
    result = invalid(tmp_path, step(spec=spec))
    result.has("a.yaml:7:8: spec.inputs.n: use only one of query, jmespath")


def test_an_input_without_a_query(tmp_path):
    result = invalid(tmp_path, step(spec="inputs:\n  n: { default: x }\nrun: [[echo]]\n"))
    result.has("a.yaml:7:8: spec.inputs.n: needs query or jmespath",
               "known fields: jmespath, query")


def test_a_bad_input_name_points_at_the_key(tmp_path):
    result = invalid(tmp_path, step(spec="inputs:\n  1st: { query: .a }\nrun: [[echo]]\n"))
    result.has("a.yaml:7:5: spec.inputs[\"1st\"]: \"1st\" must be a name of letters, digits, '_' "
               "and '-', not starting with a digit")


def test_the_status_key_kratix_is_reserved(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\nstatus:\n  kratix: x\n"))
    result.has('a.yaml:8:5: spec.status.kratix: "kratix" is reserved',
               'Kratix rejects a top-level "kratix" key in status.yaml; choose another name')


def test_a_status_value_of_the_wrong_shape(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\nstatus:\n  s: null\n"))
    result.has("a.yaml:8:8: spec.status.s: expected a string, a number, a boolean, a mapping or "
               "a list, got null")


def test_a_typo_in_a_status_file_value(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\nstatus:\n  s: { file: o.json, qurey: .a }\n"))
    result.has('a.yaml:8:24: spec.status.s.qurey: unknown field "qurey"', 'did you mean "query"?')


# -- step names across files ------------------------------------------------------------------


def test_duplicate_step_names_across_two_files(tmp_path):
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "10-a.yaml").write_text(step(name="same"))
    (tmp_path / "steps" / "20-b.yaml").write_text("# the second\n" + step(name="same"))
    result = validate(tmp_path, "steps")
    assert result.code == 2
    result.has('steps/20-b.yaml:5:9: metadata.name: step name "same" is already used in '
               "steps/10-a.yaml:4", "step names must be unique across the steps directory")


def test_duplicate_step_names_across_files_given_one_by_one(tmp_path):
    (tmp_path / "a.yaml").write_text(step(name="same"))
    (tmp_path / "b.yaml").write_text(step(name="same"))
    result = validate(tmp_path, "a.yaml", "b.yaml")
    assert result.code == 2
    result.has('b.yaml:4:9: metadata.name: step name "same" is already used in a.yaml:4',
               "step names must be unique across the steps directory")


# -- YAML itself ------------------------------------------------------------------------------


def test_a_duplicate_yaml_key(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo]]\nworkdir: a\nworkdir: b\n"))
    result.has('a.yaml:8:3: spec.workdir: duplicate key "workdir" (first defined on line 7)')


def test_malformed_yaml_says_where_and_what_was_expected(tmp_path):
    result = invalid(tmp_path, step(spec="run:\n  - [echo, hi\n"))
    result.has("a.yaml:8:1: invalid YAML: did not find expected ',' or ']' (while parsing a "
               "flow sequence started on line 7)")


def test_bad_indentation(tmp_path):
    result = invalid(tmp_path, f"{HEADER}metadata:\n  name: x\n    bad: y\n")
    result.has("a.yaml:5:8: invalid YAML: mapping values are not allowed in this context",
               'quote a value containing ": ", or check the indentation')


def test_a_tab_for_indentation(tmp_path):
    result = invalid(tmp_path, f"{HEADER}metadata:\n\tname: x\n")
    result.has("a.yaml:4:1: invalid YAML: found character that cannot start any token (while "
               "scanning for the next token)",
               "indent with spaces; YAML does not allow tabs for indentation")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n...\n"],
                         ids=["empty", "blank", "comment", "empty-document"])
def test_an_empty_file(tmp_path, text):
    result = invalid(tmp_path, text)
    result.has("a.yaml:1:1: no step in this file (it is empty)")


def test_a_binary_file(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    result = validate(tmp_path, "a.yaml")
    assert result.code == 2
    result.has("a.yaml:1:8: not a text file (it contains NUL bytes)")


def test_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "a.yaml").write_bytes(step().encode().replace(b"echo", b"\xe9cho"))
    result = validate(tmp_path, "a.yaml")
    assert result.code == 2
    result.has("a.yaml:7:8: not UTF-8 text (byte 0xe9)")


def test_a_control_character(tmp_path):
    result = invalid(tmp_path, step(spec="run: [[echo, \"a\x01\"]]\n"))
    result.has("a.yaml:6:18: invalid YAML: character U+0001 is not allowed in YAML text",
               "remove control characters; write them as escapes in a quoted string")


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer")],
    ids=["list", "string", "number"],
)
def test_a_document_that_is_not_a_mapping(tmp_path, text, got):
    result = invalid(tmp_path, text)
    result.has("a.yaml:1:1: expected a step (a mapping of apiVersion, kind, metadata and spec), "
               f"got {got}")


def test_an_error_in_the_second_document_of_a_file(tmp_path):
    text = step(name="one") + "---\n" + step(name="two", spec="run: [[echo]]\nworkdri: x\n")
    result = invalid(tmp_path, text)
    result.has('a.yaml:15:3: spec.workdri: unknown field "workdri"', 'did you mean "workdir"?')
    assert len([line for line in result.lines if line.startswith("a.yaml:")]) == 1


def test_a_syntax_error_in_the_second_document_keeps_the_first_checked(tmp_path):
    text = step(name="one", spec="run: [[echo]]\nworkdri: x\n") + "---\nkey: [unclosed\n"
    result = invalid(tmp_path, text)
    result.has('a.yaml:7:3: spec.workdri: unknown field "workdri"', 'did you mean "workdir"?')
    assert any(line.startswith("a.yaml:10:1: invalid YAML: did not find expected ',' or ']'")
               for line in result.lines), result.err


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("x: &a {k: v}\ny:\n  <<: *a\n",
         "a.yaml:3:3: y: YAML merge keys (<<) are not supported"),
        ("x: !Ref thing\n", "a.yaml:1:4: x: unsupported YAML tag !Ref"),
        ("x: &a [*a]\n", "a.yaml:1:8: x[0]: recursive alias *a"),
        ("x: *nowhere\n", "a.yaml:1:4: x: undefined alias *nowhere"),
        ("? [a, b]\n: c\n", "a.yaml:1:3: mapping keys must be strings"),
    ],
    ids=["merge-key", "custom-tag", "recursive-alias", "undefined-alias", "complex-key"],
)
def test_yaml_features_steps_do_not_support(tmp_path, body, line):
    result = invalid(tmp_path, body)
    result.has(line)


def test_a_billion_laughs_alias_bomb(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    result = invalid(tmp_path, "\n".join(lines) + "\n")
    result.has("a.yaml:6:8: document too large (aliases expand to more than 100000 nodes)")


def test_deep_nesting(tmp_path):
    result = invalid(tmp_path, "a: " + "[" * 200_000 + "]" * 200_000 + "\n")
    result.has("a.yaml:1:103: nested too deeply (more than 100 levels)")


def test_a_huge_file(tmp_path):
    result = invalid(tmp_path, step() + "# " + "x" * (2 << 20) + "\n")
    result.has("a.yaml:1:1: file too large (more than 1048576 bytes)")


def test_a_huge_number_is_not_a_crash(tmp_path):
    # More digits than Python's int() converts by default: a (huge) number all the same.
    result = invalid(tmp_path, step(spec="run: [[echo]]\nworkdir: " + "9" * 5000 + "\n"))
    result.has("a.yaml:7:12: spec.workdir: expected a string, got a number")


# -- files and folders ------------------------------------------------------------------------


@BOTH_WAYS
def test_a_missing_path(tmp_path, runner):
    result = validate(tmp_path, "nowhere.yaml", runner=runner)
    assert result.code == 2
    result.has("nowhere.yaml: no such file or directory")


def test_a_folder_with_no_step_files(tmp_path):
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "README.md").write_text("not a step\n")
    result = validate(tmp_path, "steps")
    assert result.code == 2
    result.has("steps: no step files (*.yaml, *.yml) in this folder")


def test_a_path_that_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    result = validate(tmp_path, "pipe.yaml")
    assert result.code == 2
    result.has("pipe.yaml: not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(step())
    path.chmod(0)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 2
    result.has("a.yaml: cannot read file: Permission denied")


def test_folders_are_searched_recursively_skipping_hidden_ones(tmp_path):
    (tmp_path / "steps" / "sub").mkdir(parents=True)
    (tmp_path / "steps" / ".git").mkdir()
    (tmp_path / "steps" / "sub" / "a.yml").write_text(step(name="a"))
    (tmp_path / "steps" / "b.yaml").write_text(step(name="b"))
    (tmp_path / "steps" / ".git" / "c.yaml").write_text("not: [a step\n")
    (tmp_path / "steps" / ".#b.yaml").write_text("editor lock file\n")
    result = validate(tmp_path, "steps")
    assert result.code == 0, result.err
    assert result.out == "ok: 2 steps in 2 files\n"


# -- templates --------------------------------------------------------------------------------


INPUTS = "inputs:\n  name: { query: .metadata.name }\n  namespace: { query: .metadata.namespace }\n"


def test_an_unknown_input_names_the_closest_input(tmp_path):
    text = step(spec=INPUTS + 'env:\n  BUCKET: "x-${{ inputs.nmae }}"\nrun: [[echo]]\n')
    result = invalid(tmp_path, text)
    assert where(text, "${{ inputs.nmae") == "10:16"
    result.has('a.yaml:10:16: spec.env.BUCKET: unknown input "nmae" in ${{ inputs.nmae }}',
               'did you mean "inputs.name"?')


def test_an_unknown_input_with_nothing_close_lists_the_inputs(tmp_path):
    text = step(spec=INPUTS + "run:\n  - [echo, '${{ inputs.zzz }}']\n")
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.run[0][1]: unknown input "zzz" in '
               "${{ inputs.zzz }}", "declared inputs: name, namespace")


def test_an_input_named_without_inputs_dot(tmp_path):
    text = step(spec=INPUTS + 'workdir: "${{ name }}"\nrun: [[echo]]\n')
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.workdir: unknown name "name"',
               'did you mean "inputs.name"?')


def test_an_unknown_kratix_name(tmp_path):
    text = step(spec='state:\n  name: "${{ kratix.objekt.name }}-st"\n  files: [{path: s}]\n'
                     "run: [[echo]]\n")
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.state.name: unknown name "kratix.objekt.name"',
               'did you mean "kratix.object.name"?')


def test_the_second_of_two_templates_is_located(tmp_path):
    text = step(spec=INPUTS + 'env:\n  B: "${{ inputs.name }}.${{ kratix.nope }}"\nrun: [[x]]\n')
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{ kratix")}: spec.env.B: unknown name "kratix.nope"',
               'did you mean "kratix.promise"?')


def test_an_unknown_template_root(tmp_path):
    text = step(spec='run:\n  - [echo, "${{ env.HOME }}"]\n')
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.run[0][1]: unknown name "env.HOME": '
               "names start with inputs, values, kratix or steps")


def test_a_malformed_template_points_at_the_bad_part(tmp_path):
    text = step(spec=INPUTS + 'run:\n  - [echo, "${{ inputs.name | upper }}"]\n')
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, '| upper')}: spec.run[0][1]: unsupported template "
               "expression 'inputs.name | upper' at offset 16: only dotted names are supported, "
               "e.g. ${{ inputs.name }}")


def test_an_unterminated_template(tmp_path):
    text = step(spec=INPUTS + 'env:\n  X: "a-${{ inputs.name"\nrun: [[x]]\n')
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.env.X: unterminated "${{{{" at offset 2; a '
               'template ends with "}}"')


SECRETS = "secrets:\n  TOKEN: { env: API_TOKEN }\n"
SECRET_HINT = 'commands get the secret as the environment variable TOKEN; a script can use "$TOKEN"'


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ('run:\n  - [curl, -H, "Authorization: ${{ secrets.TOKEN }}"]\n', "spec.run[0][2]"),
        ('env:\n  AUTH: "${{ secrets.TOKEN }}"\nrun: [[echo]]\n', "spec.env.AUTH"),
        ('workdir: "/tmp/${{ secrets.TOKEN }}"\nrun: [[echo]]\n', "spec.workdir"),
        ('run: [[echo]]\nstatus:\n  token: "${{ secrets.TOKEN }}"\n', "spec.status.token"),
        ('run:\n  - { argv: [echo], env: { T: "${{ TOKEN }}" } }\n', "spec.run[0].env.T"),
        ("state:\n  name: ${{ secrets.TOKEN }}\n  files: [{path: s}]\nrun: [[x]]\n",
         "spec.state.name"),
    ],
    ids=["argv", "env", "workdir", "status", "bare-name-in-command-env", "state-name"],
)
def test_secrets_are_never_templated(tmp_path, spec, path):
    text = step(spec=SECRETS + spec)
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: {path}: secrets are never templated (found "TOKEN")',
               SECRET_HINT)


def test_a_secret_referenced_as_an_input(tmp_path):
    text = step(spec=SECRETS + 'run:\n  - [echo, "${{ inputs.TOKEN }}"]\n')
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "${{")}: spec.run[0][1]: secrets are never templated (found '
               '"TOKEN")', SECRET_HINT)


def test_no_templates_inside_a_script(tmp_path):
    text = step(spec=INPUTS + 'run:\n  - script: echo "${{ inputs.name }}"\n')
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{')}: spec.run[0].script: templates are not allowed in script: "
        "a value pasted into shell text can run as code",
        'read inputs from the environment instead, e.g. "$INPUT_NAME"',
    )


def test_no_templates_inside_a_block_script(tmp_path):
    text = step(spec=INPUTS + "dryRun:\n  - script: |\n      set -x\n"
                              "      echo ${{ inputs.namespace }}\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '|')}: spec.dryRun[0].script: templates are not allowed in script: "
        "a value pasted into shell text can run as code",
        'read inputs from the environment instead, e.g. "$INPUT_NAMESPACE"',
    )


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ('output:\n  - { from: x/, to: "${{ inputs.name }}/" }\n', "spec.output[0].to"),
        ('on: { promise: "${{ inputs.name }}" }\n', "spec.on.promise"),
        ("state: { files: [{ path: '${{ inputs.name }}.tfstate' }] }\n",
         "spec.state.files[0].path"),
        ("secrets: { S: { file: '/run/${{ inputs.name }}' } }\n", "spec.secrets.S.file"),
        ("status: { url: { file: '${{ inputs.name }}.json' } }\n", "spec.status.url.file"),
    ],
    ids=["output", "on.promise", "state-file", "secret-file", "status-file"],
)
def test_templates_where_they_are_not_expanded(tmp_path, spec, path):
    text = step(spec=INPUTS + "run: [[echo]]\n" + spec)
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{')}: {path}: templates are not expanded here",
        "templates work in env values, workdir, state.name, state.namespace, state.bucket, argv "
        "items, command env values, command workdir, stdin, status values, manifest path, "
        "manifest from, manifests, destinations, output from, waitFor.message and suspend.message",
    )


def test_a_template_in_a_default_is_not_expanded(tmp_path):
    text = step(spec="inputs:\n  x: { query: .a, default: '${{ kratix.object.name }}' }\n"
                     "run: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{')}: spec.inputs.x.default: templates are not expanded here",
        "templates work in env values, workdir, state.name, state.namespace, state.bucket, argv "
        "items, command env values, command workdir, stdin, status values, manifest path, "
        "manifest from, manifests, destinations, output from, waitFor.message and suspend.message",
    )


def test_every_kratix_name_is_known_and_descriptions_are_prose(tmp_path):
    names = ["action", "workflow", "promise", "pipeline", "object.kind", "object.group",
             "object.version", "object.name", "object.namespace", "dirs.input", "dirs.output",
             "dirs.metadata"]  # fmt: skip
    argv = ", ".join(f'"${{{{ kratix.{n} }}}}"' for n in names)
    spec = f"inputs:\n  x: {{ query: .a, description: 'not a ${{{{ template' }}\nrun:\n  - [echo, {argv}]\n"
    (tmp_path / "a.yaml").write_text(step(spec=spec))
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


# -- queries ----------------------------------------------------------------------------------


def test_a_bad_query_points_into_the_expression(tmp_path):
    text = step(spec="inputs:\n  n: { query: .metadata..name }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    assert where(text, ".name") == "7:27"  # the second "." of "..": offset 10
    result.has('a.yaml:7:27: spec.inputs.n.query: invalid query: expected a key after "." at '
               "offset 10")


def test_a_bad_quoted_query_points_into_the_expression(tmp_path):
    text = step(spec="inputs:\n  n: { query: '.metadata.labels[\"a' }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, chr(34) + 'a')}: spec.inputs.n.query: invalid query: unterminated "
               'string (missing closing ") at offset 17')


def test_a_query_without_the_leading_dot(tmp_path):
    text = step(spec="inputs:\n  n: { query: metadata.name }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'metadata.name')}: spec.inputs.n.query: invalid query: "
               'expected "." but found "m" at offset 0; yq-style paths start with "." (e.g. '
               ".metadata.name); use jmespath: for a JMESPath expression")


def test_a_bad_query_in_a_status_value(tmp_path):
    text = step(spec="run: [[x]]\nstatus:\n  url: { file: o.json, query: '.a[x]' }\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'x]' + chr(39))}: spec.status.url.query: invalid query: expected an "
               'integer index, a quoted key or "]" after "[" but found "x" at offset 3')


def test_a_bad_jmespath(tmp_path):
    text = step(spec="inputs:\n  n: { jmespath: 'spec.items[' }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, chr(39) + ' }')}: spec.inputs.n.jmespath: invalid jmespath: "
               "incomplete expression at offset 11")


def test_an_unknown_jmespath_function(tmp_path):
    text = step(spec="inputs:\n  n: { jmespath: 'lenght(spec.items)' }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'lenght')}: spec.inputs.n.jmespath: invalid jmespath: "
               "unknown function lenght() at offset 0")


def test_a_query_with_escapes_points_at_the_scalar(tmp_path):
    # The value's offsets don't match the text's columns here: point at the scalar instead.
    text = step(spec='inputs:\n  n: { query: ".a\\u00e9..b" }\nrun: [[x]]\n')
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, chr(34) + '.a')}: spec.inputs.n.query: invalid query: expected a "
               'key after "." at offset 4')


# -- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("default: 5, type: string", "expected string, found 5"),
        ("default: '5', type: integer", 'expected integer, found "5"'),
        ("default: true, type: number", "expected number, found true"),
        ("default: huge, enum: [small, large]", '"huge" is not one of "small", "large"'),
        ("default: ABC, pattern: '^[a-z]+$'", "\"ABC\" does not match pattern '^[a-z]+$'"),
    ],
    ids=["type-string", "type-integer", "bool-is-not-a-number", "enum", "pattern"],
)
def test_a_default_must_fit_its_input(tmp_path, fields, message):
    text = step(spec=f"inputs:\n  n: {{ query: .a, {fields} }}\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    assert where(text, "default: ") == "7:21"
    result.has(f"a.yaml:7:30: spec.inputs.n.default: default does not fit the input: {message}")


def test_a_null_default_is_fine(tmp_path):
    spec = "inputs:\n  n: { query: .a, default: null, type: string, enum: [a] }\nrun: [[x]]\n"
    (tmp_path / "a.yaml").write_text(step(spec=spec))
    assert validate(tmp_path, "a.yaml").code == 0


def test_an_enum_value_must_fit_the_type(tmp_path):
    text = step(spec="inputs:\n  n: { query: .a, type: integer, enum: [1, two] }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'two')}: spec.inputs.n.enum[1]: enum value does not fit: "
               'expected integer, found "two"')


def test_an_invalid_regular_expression(tmp_path):
    text = step(spec="inputs:\n  n: { query: .a, pattern: '^[a-z' }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, chr(39) + '^')}: spec.inputs.n.pattern: invalid regular "
               "expression: unterminated character set at position 1")


def test_two_inputs_with_the_same_environment_name(tmp_path):
    text = step(spec="inputs:\n  my-name: { query: .a }\n  my_name: { query: .b }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "my_name")}: spec.inputs.my_name: inputs "my-name" and '
               '"my_name" are both $INPUT_MY_NAME to scripts', "rename one of them")


# -- state ------------------------------------------------------------------------------------


def test_state_without_files(tmp_path):
    text = step(spec="state: { store: configmap }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, '{ store')}: spec.state: a state needs something to keep: "
               "files, or a generated secret",
               'add the files it keeps ("files: [{path: terraform.tfstate}]"), declare the '
               "generated secrets it keeps (as a delete step that removes them must too: "
               '"secrets: {PW: {generate: {length: 24}}}"), or "store: none"')


def test_state_files_with_store_none(tmp_path):
    text = step(spec="state: { store: none, files: [{path: s}] }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, '[{path')}: spec.state.files: store \"none\" keeps no files")


def test_on_delete_remove_on_a_configure_step(tmp_path):
    text = step(spec="state: { files: [{path: s}], onDelete: remove }\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, 'remove')}: spec.state.onDelete: onDelete applies only to "
               "delete steps", 'add "on: {action: delete}"')


def test_two_state_files_with_the_same_key(tmp_path):
    text = step(spec="state:\n  files: [{path: a/s.json}, {path: b/s.json}]\nrun: [[x]]\n")
    result = invalid(tmp_path, text)
    result.has(f'a.yaml:{where(text, "{path: b")}: spec.state.files[1]: key "s.json" is already '
               "used by files[0]", 'give one of them its own "key:"')


# -- reporting --------------------------------------------------------------------------------


def test_schema_and_semantic_problems_of_one_document_are_reported_together(tmp_path):
    spec = INPUTS + 'env:\n  X: "${{ inputs.nmae }}"\nrun: [[x]]\nworkdri: y\n'
    result = invalid(tmp_path, step(spec=spec))
    result.has('a.yaml:10:9: spec.env.X: unknown input "nmae" in ${{ inputs.nmae }}',
               'did you mean "inputs.name"?')
    result.has('a.yaml:12:3: spec.workdri: unknown field "workdri"', 'did you mean "workdir"?')


def test_no_semantic_noise_below_a_node_the_schema_rejected(tmp_path):
    spec = 'run: [[x]]\nunknown:\n  x: "${{ inputs.nothing }}"\n'
    result = invalid(tmp_path, step(spec=spec))
    assert result.lines == ['a.yaml:7:3: spec.unknown: unknown field "unknown"',
                            "  hint: known fields: copyWorkdir, destinations, dryRun, env, if, "
                            "inputs, manifests, on, output, outputs, params, retry, run, secrets, "
                            "state, status, suspend, timeout, uses, values, waitFor, with, workdir",
                            "invalid: 1 problem (1 file checked)"]


def test_all_problems_of_all_files_in_one_run():
    result = validate(REPO, "tests/data/validate/invalid")
    assert result.code == 2
    expected = (DATA / "invalid.txt").read_text()
    assert result.err == expected


def test_several_files_with_errors_in_one_run(tmp_path):
    (tmp_path / "a.yaml").write_text(step(name="a", spec="run: [[x]]\nworkdri: y\n"))
    (tmp_path / "b.yaml").write_text("[unclosed\n")
    (tmp_path / "c.yaml").write_text(step(name="c"))
    (tmp_path / "d.yaml").write_bytes(b"\0")
    result = validate(tmp_path, ".")
    assert result.code == 2
    result.has('a.yaml:7:3: spec.workdri: unknown field "workdri"', 'did you mean "workdir"?')
    result.has("b.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
               "sequence started on line 1)")
    result.has("d.yaml:1:1: not a text file (it contains NUL bytes)")
    assert result.lines[-1] == "invalid: 3 problems (4 files checked)"


@BOTH_WAYS
def test_json_report(tmp_path, runner):
    (tmp_path / "a.yaml").write_text(step(name="good"))
    (tmp_path / "b.yaml").write_text(step(name="bad", metadata="  descripton: x\n"))
    result = validate(tmp_path, "--format", "json", ".", runner=runner)
    assert result.code == 2
    assert result.err == ""
    report = json.loads(result.out)
    assert report == {
        "valid": False,
        "files": ["a.yaml", "b.yaml"],
        "steps": [{"name": "good", "file": "a.yaml", "line": 4}],
        "templates": [],
        "problems": [
            {"file": "b.yaml", "line": 5, "column": 3, "path": "metadata.descripton",
             "message": 'unknown field "descripton"', "hint": 'did you mean "description"?'},
        ],
    }  # fmt: skip


def test_json_report_of_valid_files(tmp_path):
    (tmp_path / "a.yaml").write_text(step(name="good"))
    result = validate(tmp_path, "--format", "json", "a.yaml")
    assert result.code == 0
    report = json.loads(result.out)
    assert report["valid"] is True and report["problems"] == []
    assert report["steps"] == [{"name": "good", "file": "a.yaml", "line": 4}]


@BOTH_WAYS
def test_valid_files_print_ok(tmp_path, runner):
    (tmp_path / "a.yaml").write_text(step(name="a"))
    result = validate(tmp_path, "a.yaml", runner=runner)
    assert (result.code, result.out, result.err) == (0, "ok: 1 step in 1 file\n", "")


def test_the_fixture_steps_use_every_field_and_are_valid():
    result = validate(REPO, "tests/data/validate/valid")
    assert result.code == 0, result.err
    assert result.out == "ok: 4 steps in 3 files\n"


@pytest.mark.skipif(Path("/steps.d").is_dir(), reason="/steps.d is the default folder here")
def test_the_shipped_steps_validate_from_the_default_folder():
    result = validate(REPO)
    assert result.code == 0, result.err
    assert result.out == "ok: 2 steps in 2 files\n"


def test_the_steps_dir_option_and_variable(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.yaml").write_text(step(name="a"))
    assert validate(tmp_path, "--steps-dir", "mine").out == "ok: 1 step in 1 file\n"
    assert validate(tmp_path, env={"RUNNER_STEPS_DIR": "mine"}).out == "ok: 1 step in 1 file\n"
