"""StepTemplates: `kind: StepTemplate` with `params`, a Step's `uses:`/`with:`, the merge, the
paths, and the commands that know about templates (validate, run, plan, templates).

Validate tests write a steps folder under `tmp_path` and run `runner validate steps.d` there,
so files print as `steps.d/...`; each expected location is found in the text written
(`where`), not copied from the output. Run tests use the `pipeline` fixture's folders and run
`runner` in a subprocess as a Kratix container does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from runner.stepfile.step_template_library import builtin_templates
from tests.conftest import Pipeline
from tests.test_validate import Result, step, validate, where

PY = sys.executable
BUILTINS = [t.name for t in builtin_templates()]  # listed after the steps folder's
TEMPLATE_HEADER = "apiVersion: runner.kratix.dev/v1alpha1\nkind: StepTemplate\n"

GREET = """
params:
  who: { type: string, description: the one greeted }
  count: { type: integer, default: 1 }
run:
  - [echo, "hello ${{ params.who }}"]
"""


def template(name: str, spec: str, metadata: str = "") -> str:
    """A StepTemplate document's text, like `step()`: `spec` is the YAML under `spec:`."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"{TEMPLATE_HEADER}metadata:\n  name: {name}\n{metadata}spec:\n{body}\n"


def write(root: Path, path: str, text: str) -> str:
    """Write `text` to `root/path` (folders made); returns `text`, for `where`."""
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return text


def locate(text: str, needle: str, after: str) -> str:
    """`LINE:COL` of the first `needle` after the first `after` in `text`."""
    index = text.index(needle, text.index(after))
    return f"{text.count(chr(10), 0, index) + 1}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def line_of(text: str, needle: str) -> int:
    return int(where(text, needle).split(":")[0])


def problems(tmp_path: Path) -> Result:
    """`runner validate steps.d` in `tmp_path`, expecting exit 2."""
    result = validate(tmp_path, "steps.d")
    assert result.code == 2, result.err + result.out
    assert result.out == ""
    return result


def valid(tmp_path: Path) -> Result:
    result = validate(tmp_path, "steps.d")
    assert result.code == 0, result.err
    assert result.err == ""
    return result


def problem_lines(result: Result) -> list[str]:
    """The problems' first lines (neither hints nor the summary)."""
    return [
        line
        for line in result.lines
        if not line.startswith("  hint:") and not line.startswith("invalid:")
    ]


# -- validate: what is fine ---------------------------------------------------------------------


def test_a_step_uses_a_template_by_name_and_by_paths_relative_to_its_file(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/templates/t.yaml", template("greet", GREET))
    write(tmp_path, "shared/t.yaml", template("shared", "uses: greet\nwith: { who: shared }\n"))
    write(
        tmp_path,
        "steps.d/a.yaml",
        step("by-name", "uses: greet\nwith: { who: world }\n")
        + "---\n"
        + step("by-path", "uses: ./templates/t.yaml\nwith: { who: path, count: 2 }\n")
        + "---\n"
        + step("by-parent-path", "uses: ../shared/t.yaml\n"),
    )
    result = valid(tmp_path)
    # The template outside the steps folder is used, not counted: only the folder's files are.
    assert result.out == "ok: 3 steps and 1 template in 2 files\n"
    report = json.loads(validate(tmp_path, "steps.d", "--format", "json").out)
    assert [s["name"] for s in report["steps"]] == ["by-name", "by-path", "by-parent-path"]
    assert report["templates"] == [{"name": "greet", "file": "steps.d/templates/t.yaml", "line": 4}]


def test_a_path_in_a_subfolder_resolves_against_the_using_file_not_the_current_folder(
    tmp_path: Path,
) -> None:
    write(tmp_path, "steps.d/team/lib/t.yaml", template("greet", GREET))
    write(tmp_path, "steps.d/team/a.yaml", step("a", "uses: ./lib/t.yaml\nwith: { who: x }\n"))
    assert valid(tmp_path).out == "ok: 1 step and 1 template in 2 files\n"
    # The same `uses:` from a file one folder up names a file that is not there.
    text = write(tmp_path, "steps.d/b.yaml", step("b", "uses: ./lib/t.yaml\nwith: { who: x }\n"))
    result = problems(tmp_path)
    result.has(f"steps.d/b.yaml:{where(text, './lib')}: spec.uses: no such file: ./lib/t.yaml "
               "(from steps.d)")  # fmt: skip


def test_templates_using_templates_in_subfolders_of_the_steps_folder(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/templates/base/greet.yaml", template("greet", GREET))
    write(
        tmp_path,
        "steps.d/templates/loud.yaml",
        template(
            "loud",
            "params: { name: { type: string } }\n"
            "uses: greet\nwith: { who: '${{ params.name }}!', count: 2 }\n",
        ),
    )
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: loud\nwith: { name: bob }\n"))
    write(
        tmp_path, "steps.d/b.yaml", step("b", "uses: ./templates/loud.yaml\nwith: { name: al }\n")
    )
    assert valid(tmp_path).out == "ok: 2 steps and 2 templates in 4 files\n"


def test_one_step_one_template_in_one_file_counts_each_once(tmp_path: Path) -> None:
    text = template("greet", GREET) + "---\n" + step("a", "uses: greet\nwith: { who: x }\n")
    write(tmp_path, "steps.d/a.yaml", text)
    assert valid(tmp_path).out == "ok: 1 step and 1 template in 1 file\n"


def test_a_with_value_holding_a_template_is_not_type_checked_at_validate_time(
    tmp_path: Path,
) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    spec = (
        "uses: greet\n"
        "inputs: { n: { query: .spec.n } }\n"
        "with: { who: x, count: '${{ inputs.n }}' }\n"
    )
    write(tmp_path, "steps.d/a.yaml", step("a", spec))
    assert valid(tmp_path).out == "ok: 1 step and 1 template in 2 files\n"
    # The same value without a template is checked.
    text = write(tmp_path, "steps.d/a.yaml", step("a", spec.replace("${{ inputs.n }}", "n")))
    result = problems(tmp_path)
    result.has(f"steps.d/a.yaml:{where(text, chr(39) + 'n' + chr(39))}: spec.with.count: "
               "param count: expected integer, found \"n\"")  # fmt: skip


# -- validate: `uses` -----------------------------------------------------------------------------


def test_an_unknown_template_name_suggests_the_closest(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greeet\nwith: { who: x }\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "greeet")}: spec.uses: no StepTemplate named "greeet"',
               'did you mean "greet"?')  # fmt: skip
    assert result.lines[-1] == "invalid: 1 problem (2 files checked)"


def test_an_unknown_template_name_with_nothing_close_lists_the_templates(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: zzzz\n"))
    result = problems(tmp_path)
    known = ", ".join(sorted(["greet", *BUILTINS]))  # the folder's and the built-in ones
    result.has(f'steps.d/a.yaml:{where(text, "zzzz")}: spec.uses: no StepTemplate named "zzzz"',
               f"templates: {known}")  # fmt: skip


def test_uses_a_path_to_a_missing_file(tmp_path: Path) -> None:
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: ./templates/nope.yaml\n"))
    result = problems(tmp_path)
    line = f"steps.d/a.yaml:{where(text, './')}: spec.uses: no such file: ./templates/nope.yaml " \
           "(from steps.d)"  # fmt: skip
    result.has(line)
    assert problem_lines(result) == [line]


def test_uses_a_path_to_a_file_with_no_step_template(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/b.yaml", step("b"))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: ./b.yaml\n"))
    result = problems(tmp_path)
    line = f"steps.d/a.yaml:{where(text, './')}: spec.uses: ./b.yaml holds no StepTemplate; " \
           "a path must name a file of one"  # fmt: skip
    result.has(line)
    assert problem_lines(result) == [line]


def test_uses_a_path_outside_the_steps_folder_to_a_file_with_no_step_template(
    tmp_path: Path,
) -> None:
    write(tmp_path, "other/b.yaml", step("b"))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: ../other/b.yaml\n"))
    result = problems(tmp_path)
    result.has(f"steps.d/a.yaml:{where(text, '../')}: spec.uses: ../other/b.yaml holds no "
               "StepTemplate; a path must name a file of one")  # fmt: skip


def test_uses_a_path_to_a_file_with_two_step_templates(tmp_path: Path) -> None:
    write(
        tmp_path,
        "steps.d/lib.yaml",
        template("one", "run: [[echo]]\n") + "---\n" + template("two", "run: [[echo]]\n"),
    )
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: ./lib.yaml\n"))
    result = problems(tmp_path)
    result.has(f"steps.d/a.yaml:{where(text, './')}: spec.uses: ./lib.yaml holds 2 StepTemplates; "
               "a path must name a file of one", "name the template instead")  # fmt: skip


# -- validate: `with` and `params` ------------------------------------------------------------------


def test_an_unknown_with_key_suggests_the_closest_param(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greet\nwith: { who: x, cuont: 2 }\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "cuont")}: spec.with.cuont: template greet has no '
               'param "cuont"', 'did you mean "count"?')  # fmt: skip
    assert len(problem_lines(result)) == 1


def test_an_unknown_with_key_with_nothing_close_lists_the_params(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greet\nwith: { who: x, zzz: 2 }\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "zzz")}: spec.with.zzz: template greet has no '
               'param "zzz"', "params: count, who")  # fmt: skip


def test_a_missing_required_param_names_the_template_and_hints_its_description(
    tmp_path: Path,
) -> None:
    tpl = write(tmp_path, "steps.d/templates/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greet\nwith: { count: 2 }\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "{ count")}: spec.with: missing param "who" of '
               f'template greet (steps.d/templates/t.yaml:{line_of(tpl, "name: greet")})',
               "who: the one greeted")  # fmt: skip


def test_a_missing_required_param_without_with_is_located_at_uses(tmp_path: Path) -> None:
    tpl = write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greet\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "greet")}: spec.uses: missing param "who" of '
               f'template greet (steps.d/t.yaml:{line_of(tpl, "name: greet")})',
               "who: the one greeted")  # fmt: skip
    assert len(problem_lines(result)) == 1


def test_a_param_with_a_default_or_required_false_may_be_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        "steps.d/t.yaml",
        template(
            "opt",
            "params:\n  a: { type: string, default: x }\n  b: { type: string, required: false }\n"
            "run: [[echo, '${{ params.a }}', 'b=${{ params.b }}']]\n",
        ),
    )
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: opt\n"))
    assert valid(tmp_path).out == "ok: 1 step and 1 template in 2 files\n"


@pytest.mark.parametrize(
    ("value", "needle", "message"),
    [
        ('"3"', '"3"', 'param count: expected integer, found "3"'),
        ("{ size: 1 }", "{ size", 'param count: expected integer, found {"size": 1}'),
    ],
    ids=["string-for-integer", "mapping-for-integer"],
)
def test_a_with_value_of_the_wrong_type(tmp_path: Path, value: str, needle: str, message: str):
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(
        tmp_path, "steps.d/a.yaml", step("a", f"uses: greet\nwith: {{ who: x, count: {value} }}\n")
    )
    result = problems(tmp_path)
    result.has(f"steps.d/a.yaml:{where(text, needle)}: spec.with.count: {message}")


PICKY = """
params:
  size: { type: string, enum: [small, large] }
  name: { type: string, pattern: "^[a-z]+$" }
run:
  - [echo, "${{ params.size }}", "${{ params.name }}"]
"""


def test_a_with_value_not_in_the_enum(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("picky", PICKY))
    text = write(
        tmp_path, "steps.d/a.yaml", step("a", "uses: picky\nwith: { size: medium, name: ok }\n")
    )
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "medium")}: spec.with.size: param size: "medium" is '
               'not one of "small", "large"')  # fmt: skip
    assert len(problem_lines(result)) == 1


def test_a_with_value_not_matching_the_pattern(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("picky", PICKY))
    text = write(
        tmp_path, "steps.d/a.yaml", step("a", "uses: picky\nwith: { size: small, name: Bad1 }\n")
    )
    result = problems(tmp_path)
    result.has(f"steps.d/a.yaml:{where(text, 'Bad1')}: spec.with.name: param name: \"Bad1\" does "
               "not match pattern '^[a-z]+$'")  # fmt: skip
    assert len(problem_lines(result)) == 1


def test_a_bad_param_default(tmp_path: Path) -> None:
    spec = "params:\n  n: { type: integer, default: many }\nrun: [[echo, '${{ params.n }}']]\n"
    tpl = write(tmp_path, "steps.d/t.yaml", template("t", spec))
    result = problems(tmp_path)
    result.has(f'steps.d/t.yaml:{where(tpl, "many")}: spec.params.n.default: default does not fit '
               'the param: expected integer, found "many"')  # fmt: skip


@pytest.mark.parametrize(
    ("run", "undeclared", "hint"),
    [
        ("'${{ params.sise }}'", "sise", 'did you mean "params.size"?'),
        # Beside a declared one: the string a param went into is not reported again, elsewhere.
        ("'${{ params.size }} ${{ params.nme }}'", "nme", "declare it under spec.params"),
    ],
    ids=["close-to-a-declared-one", "beside-a-declared-one"],
)
def test_an_undeclared_param_is_reported_once_at_the_template(
    tmp_path: Path, run: str, undeclared: str, hint: str
) -> None:
    spec = f"params: {{ size: {{ type: string }} }}\nrun:\n  - [echo, {run}]\n"
    tpl = write(tmp_path, "steps.d/t.yaml", template("t", spec))
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: t\nwith: { size: a }\n"))
    write(tmp_path, "steps.d/b.yaml", step("b", "uses: t\nwith: { size: b }\n"))
    result = problems(tmp_path)
    line = f'steps.d/t.yaml:{where(tpl, "${{ params." + undeclared)}: spec.run[0][1]: template t ' \
           f'has no param "{undeclared}"'  # fmt: skip
    result.has(line, hint)
    assert problem_lines(result) == [line]


def test_an_undeclared_param_with_nothing_close_says_to_declare_it(tmp_path: Path) -> None:
    tpl = write(tmp_path, "steps.d/t.yaml", template("t", "run:\n  - [echo, '${{ params.x }}']\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/t.yaml:{where(tpl, "${{")}: spec.run[0][1]: template t has no param "x"',
               "declare it under spec.params")  # fmt: skip


def test_params_on_a_step(tmp_path: Path) -> None:
    text = write(
        tmp_path, "steps.d/a.yaml", step("a", "params: { x: { type: string } }\nrun: [[echo]]\n")
    )
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "params")}: spec.params: params are declared by a '
               "StepTemplate, not a Step",
               "a Step gives a template's params with `with:`, beside `uses:`")  # fmt: skip
    assert len(problem_lines(result)) == 1


def test_with_without_uses(tmp_path: Path) -> None:
    text = write(tmp_path, "steps.d/a.yaml", step("a", "with: { x: 1 }\nrun: [[echo]]\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/a.yaml:{where(text, "with")}: spec.with: `with:` gives a template\'s '
               "params, but this step uses no template",
               "add `uses: TEMPLATE`, or remove `with:`")  # fmt: skip
    assert len(problem_lines(result)) == 1


# -- validate: templates using templates, problems in the template's part --------------------------


def test_two_templates_using_each_other(tmp_path: Path) -> None:
    text = template("ping", "uses: pong\n") + "---\n" + template("pong", "uses: ping\n")
    write(tmp_path, "steps.d/t.yaml", text)
    user = write(tmp_path, "steps.d/a.yaml", step("a", "uses: ping\n"))
    result = problems(tmp_path)
    ping = f"ping (steps.d/t.yaml:{line_of(text, 'name: ping')})"
    pong = f"pong (steps.d/t.yaml:{line_of(text, 'name: pong')})"
    result.has(f"steps.d/t.yaml:{locate(text, 'pong', 'uses:')}: spec.uses: templates use each "
               f"other in a loop: {pong} -> {ping} -> {pong}")  # fmt: skip
    result.has(f"steps.d/t.yaml:{locate(text, 'ping', '---')}: spec.uses: templates use each "
               f"other in a loop: {ping} -> {pong} -> {ping}")  # fmt: skip
    result.has(f"steps.d/a.yaml:{where(user, 'ping')}: spec.uses: template ping "
               f"(steps.d/t.yaml:{line_of(text, 'name: ping')}) cannot be used until its problems "
               "are fixed")  # fmt: skip
    assert len(problem_lines(result)) == 3


def test_a_template_using_itself(tmp_path: Path) -> None:
    text = write(tmp_path, "steps.d/t.yaml", template("me", "uses: ./t.yaml\n"))
    result = problems(tmp_path)
    me = f"me (steps.d/t.yaml:{line_of(text, 'name: me')})"
    result.has(f"steps.d/t.yaml:{where(text, './t')}: spec.uses: templates use each other in a "
               f"loop: {me} -> {me}")  # fmt: skip


def test_a_problem_in_the_template_part_is_located_in_the_template(tmp_path: Path) -> None:
    tpl = write(
        tmp_path,
        "steps.d/templates/t.yaml",
        template("broken", "run:\n  - [echo, '${{ inputs.nope }}']\n"),
    )
    user = write(tmp_path, "steps.d/a.yaml", step("a", "uses: broken\n"))
    result = problems(tmp_path)
    line = (
        f'steps.d/templates/t.yaml:{where(tpl, "${{")}: spec.run[0][1]: unknown input "nope" in '
        f"${{{{ inputs.nope }}}} (used by step a at steps.d/a.yaml:{line_of(user, 'name: a')})"
    )
    result.has(line, "no inputs are declared")
    assert problem_lines(result) == [line]


def test_the_step_inputs_satisfy_the_template_part(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("t", "run:\n  - [echo, '${{ inputs.name }}']\n"))
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: t\ninputs: { name: { query: .a } }\n"))
    assert valid(tmp_path).out == "ok: 1 step and 1 template in 2 files\n"


def test_a_schema_problem_of_a_template_is_reported_once_for_two_users(tmp_path: Path) -> None:
    tpl = write(tmp_path, "steps.d/t.yaml", template("typo", "workdirr: x\nrun: [[echo]]\n"))
    write(
        tmp_path, "steps.d/a.yaml", step("a", "uses: typo\n") + "---\n" + step("b", "uses: typo\n")
    )
    result = problems(tmp_path)
    line = f'steps.d/t.yaml:{where(tpl, "workdirr")}: spec.workdirr: unknown field "workdirr"'
    result.has(line, 'did you mean "workdir"?')
    assert problem_lines(result) == [line]
    assert result.lines[-1] == "invalid: 1 problem (2 files checked)"


def test_a_step_and_a_template_with_the_same_name(tmp_path: Path) -> None:
    tpl = write(tmp_path, "steps.d/t.yaml", template("deploy", "run: [[echo]]\n"))
    # The step's file comes first by name: the template still keeps the name.
    text = write(tmp_path, "steps.d/a.yaml", step("deploy"))
    result = problems(tmp_path)
    line = f'steps.d/a.yaml:{where(text, "deploy")}: metadata.name: step name "deploy" is ' \
           f'already used in steps.d/t.yaml:{line_of(tpl, "name: deploy")}'  # fmt: skip
    result.has(line, "the template there has it: steps and templates share one set of names")
    assert problem_lines(result) == [line]


def test_two_templates_with_the_same_name(tmp_path: Path) -> None:
    first = write(tmp_path, "steps.d/a.yaml", template("deploy", "run: [[echo]]\n"))
    text = write(tmp_path, "steps.d/b.yaml", template("deploy", "run: [[echo]]\n"))
    result = problems(tmp_path)
    result.has(f'steps.d/b.yaml:{where(text, "deploy")}: metadata.name: template name "deploy" is '
               f'already used in steps.d/a.yaml:{line_of(first, "name: deploy")}')  # fmt: skip


# -- run ---------------------------------------------------------------------------------------------

REPORT = (
    "import json, os, sys; "
    "open(sys.argv[1], 'w').write(json.dumps({'argv': sys.argv[2:], 'cwd': os.getcwd(), "
    "'env': {k: os.environ.get(k) for k in ('WHO', 'N', 'KEEP', 'OVER')}}))"
)

REPORTER = f"""
params:
  who: {{ type: string }}
  count: {{ type: integer, default: 1 }}
  tag: {{ type: string, default: template }}
env:
  WHO: "${{{{ params.who }}}}"
  N: "${{{{ params.count }}}}"
  KEEP: template
  OVER: template
workdir: ../../work
run:
  - [{PY}, -c, "{REPORT}", "${{{{ params.tag }}}}.json", "hello ${{{{ params.who }}}}", "${{{{ params.count }}}}"]
status:
  count: "${{{{ params.count }}}}"
  greeting: "hi ${{{{ params.who }}}} x${{{{ params.count }}}}"
"""


def _reporter(pipeline: Pipeline) -> Path:
    path = pipeline.steps / "templates" / "reporter.yaml"
    path.parent.mkdir()
    path.write_text(template("reporter", REPORTER))
    return path


def _report(pipeline: Pipeline, tag: str) -> dict[str, object]:
    return json.loads((pipeline.work / f"{tag}.json").read_text())


def test_params_are_substituted_with_their_types_and_env_merges_by_key(pipeline: Pipeline):
    _reporter(pipeline)
    pipeline.step(
        "a", "uses: reporter\nwith: { who: world, count: 3, tag: a }\nenv: { OVER: step }"
    )
    result = pipeline.run("run", "a")
    assert result.returncode == 0, result.stderr
    report = _report(pipeline, "a")
    assert report["argv"] == ["hello world", "3"]
    # The step's env wins over the template's; the template's other keys stay.
    assert report["env"] == {"WHO": "world", "N": "3", "KEEP": "template", "OVER": "step"}
    status = pipeline.status()
    assert status == {"count": 3, "greeting": "hi world x3"}
    assert isinstance(status["count"], int)  # exactly one param: its type, not "3"


def test_a_param_default_is_used_when_with_leaves_it_out(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step("a", "uses: reporter\nwith: { who: you }")
    result = pipeline.run("run", "a")
    assert result.returncode == 0, result.stderr
    assert _report(pipeline, "template")["argv"] == ["hello you", "1"]
    assert pipeline.status() == {"count": 1, "greeting": "hi you x1"}


def test_a_with_value_can_hold_an_input(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step(
        "a",
        "uses: reporter\ninputs: { name: { query: .metadata.name } }\n"
        "with: { who: '${{ inputs.name }}-db', tag: a }",
    )
    result = pipeline.run("run", "a")
    assert result.returncode == 0, result.stderr
    assert _report(pipeline, "a")["argv"] == ["hello my-app-db", "1"]
    assert _report(pipeline, "a")["env"]["WHO"] == "my-app-db"


def test_run_is_the_template_s_unless_the_step_gives_one(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step("a-inherits", "uses: reporter\nwith: { who: a, tag: inherits }")
    pipeline.step(
        "b-own",
        f"uses: reporter\nwith: {{ who: b, tag: own }}\n"
        f"run: [[{PY}, -c, \"open('own-run', 'w').write('step')\"]]",
    )
    result = pipeline.run("run", "a-inherits", "b-own")
    assert result.returncode == 0, result.stderr
    assert _report(pipeline, "inherits")["argv"] == ["hello a", "1"]
    assert (pipeline.work / "own-run").read_text() == "step"
    assert not (pipeline.work / "own.json").exists()  # the template's run did not run for b-own
    # The rest of the template still applies to the step with its own run.
    assert pipeline.status() == {"count": 1, "greeting": "hi b x1"}


def test_literal_paths_resolve_against_the_template_and_with_paths_against_the_step(
    pipeline: Pipeline,
) -> None:
    # The template is outside the steps folder, at the same depth as it: lib/ beside steps.d/.
    lib = pipeline.root / "lib"
    (lib / "tdir").mkdir(parents=True)
    (pipeline.steps / "sdir").mkdir()
    (lib / "base.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: BASE }\n")
    pwd = (
        f"[{PY}, -c, \"import os; open(os.path.join(os.environ['OUT'], '${{{{ params.tag }}}}'), "
        "'w').write(os.getcwd())\"]"
    )
    (lib / "t.yaml").write_text(
        template(
            "where",
            f"""
            params: {{ tag: {{ type: string }} }}
            workdir: tdir
            env: {{ OUT: {pipeline.work} }}
            manifests:
              - path: cm.yaml
                from: base.yaml
                set: {{ .metadata.name: "${{{{ params.tag }}}}" }}
            run: [{pwd}]
            """,
        )
    )
    (lib / "given.yaml").write_text(
        template(
            "where-given",
            f"""
            params: {{ dir: {{ type: string }}, tag: {{ type: string }} }}
            workdir: "${{{{ params.dir }}}}"
            env: {{ OUT: {pipeline.work} }}
            run: [{pwd}]
            """,
        )
    )
    pipeline.step("literal", "uses: ../lib/t.yaml\nwith: { tag: literal }")
    pipeline.step("given", "uses: ../lib/given.yaml\nwith: { dir: ./sdir, tag: given }")
    result = pipeline.run("run", "literal", "given")
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "literal").read_text() == str((lib / "tdir").resolve())
    assert (pipeline.work / "given").read_text() == str((pipeline.steps / "sdir").resolve())
    [doc] = [d for d in yaml.safe_load_all((pipeline.output / "cm.yaml").read_text()) if d]
    assert doc == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "literal"}}


def test_a_template_using_a_template_runs_with_both(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    (pipeline.steps / "templates" / "loud.yaml").write_text(
        template(
            "loud",
            "params: { name: { type: string }, times: { type: integer, default: 2 } }\n"
            "uses: reporter\n"
            "with: { who: '${{ params.name }}!', count: '${{ params.times }}', tag: loud }\n"
            "env: { KEEP: loud }\n",
        )
    )
    pipeline.step("a", "uses: loud\nwith: { name: bob, times: 5 }\nenv: { OVER: step }")
    result = pipeline.run("run", "a")
    assert result.returncode == 0, result.stderr
    report = _report(pipeline, "loud")
    assert report["argv"] == ["hello bob!", "5"]
    assert report["env"] == {"WHO": "bob!", "N": "5", "KEEP": "loud", "OVER": "step"}
    assert pipeline.status() == {"count": 5, "greeting": "hi bob! x5"}


def test_running_a_template_by_name_says_it_is_one(pipeline: Pipeline) -> None:
    path = _reporter(pipeline)
    pipeline.step("b", "uses: reporter\nwith: { who: b }")
    pipeline.step("a", "uses: reporter\nwith: { who: a }")
    result = pipeline.run("run", "reporter")
    assert result.returncode == 2, result.stderr
    assert f'"reporter" is a StepTemplate ({path}:4): a template is never run by itself' in (
        result.stderr
    )
    lines = result.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if "is a StepTemplate" in line)
    assert lines[first + 1] == "  hint: run a step that uses it: a, b"
    assert not list(pipeline.work.glob("*.json"))


def test_running_a_template_no_step_uses(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step("a", "run: [[true]]")
    result = pipeline.run("run", "reporter")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if "is a StepTemplate" in line)
    assert lines[first + 1] == "  hint: no step uses it yet"


def test_run_with_no_names_runs_steps_only(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    (pipeline.steps / "templates" / "plain.yaml").write_text(
        template("plain", "workdir: ../../work\nrun: [[touch, template-ran]]\n")
    )
    pipeline.step("a", "uses: reporter\nwith: { who: a, tag: a }")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in pipeline.work.iterdir()] == ["a.json"]
    started = [line for line in result.stderr.splitlines() if "started" in line]
    assert started == ["runner: [a] step a started"]


def _runner(pipeline: Pipeline, *argv: str) -> subprocess.CompletedProcess[str]:
    """`runner ARGV` in the pipeline's root, for the verbs without Kratix folders."""
    result = subprocess.run(
        [PY, "-m", "runner", *argv],
        cwd=pipeline.root, env=pipeline.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _templates(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return _runner(pipeline, "templates", "--steps-dir", "steps.d", *args)


def _listed(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    (pipeline.steps / "templates" / "loud.yaml").write_text(
        template(
            "loud",
            "params:\n"
            "  name: { type: string, pattern: '^[a-z]+$', description: who is greeted }\n"
            "  size: { type: string, enum: [s, m], default: s }\n"
            "  extra: { required: false }\n"
            "uses: reporter\nwith: { who: '${{ params.name }}' }\n",
            metadata="  description: greets loudly\n",
        )
    )
    pipeline.step("b", "uses: loud\nwith: { name: bob }")
    pipeline.step("a", "uses: reporter\nwith: { who: a }")
    pipeline.step("c", "run: [[true]]")


def test_templates_lists_the_templates_with_params_and_users(pipeline: Pipeline) -> None:
    _listed(pipeline)
    result = _templates(pipeline)
    assert result.returncode == 0, result.stderr
    own, _, rest = result.stdout.partition(f"{BUILTINS[0]}  (built in)\n")
    assert own == (
        "loud  (steps.d/templates/loud.yaml:4)\n"
        "  greets loudly\n"
        "  uses: reporter\n"
        "  params:\n"
        "    name   string, required, matching ^[a-z]+$  (who is greeted)\n"
        '    size   string, default "s", one of "s", "m"\n'
        "    extra  any type, optional\n"
        "  used by: b\n"
        "\n"
        "reporter  (steps.d/templates/reporter.yaml:4)\n"
        "  params:\n"
        "    who    string, required\n"
        "    count  integer, default 1\n"
        '    tag    string, default "template"\n'
        "  used by: a, b\n"
        "\n"
    )
    assert [line for line in rest.splitlines() if line.endswith("(built in)")] == [
        f"{name}  (built in)" for name in BUILTINS[1:]
    ]


def test_templates_as_json(pipeline: Pipeline) -> None:
    _listed(pipeline)
    result = _templates(pipeline, "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [t["name"] for t in listed] == ["loud", "reporter", *BUILTINS]
    assert [t["builtin"] for t in listed] == [False, False] + [True] * len(BUILTINS)
    assert listed[0] == {
        "name": "loud",
        "file": "steps.d/templates/loud.yaml",
        "builtin": False,
        "line": 4,
        "description": "greets loudly",
        "uses": "reporter",
        "params": [
            {"name": "name", "type": "string", "required": True, "pattern": "^[a-z]+$",
             "description": "who is greeted"},
            {"name": "size", "type": "string", "required": False, "default": "s",
             "enum": ["s", "m"]},
            {"name": "extra", "type": None, "required": False},
        ],
        "usedBy": ["b"],
    }  # fmt: skip
    assert listed[1]["usedBy"] == ["a", "b"]
    assert [p["name"] for p in listed[1]["params"]] == ["who", "count", "tag"]


def test_templates_with_none_in_the_folder_lists_the_built_in_ones(pipeline: Pipeline) -> None:
    pipeline.step("a", "run: [[true]]")
    result = _templates(pipeline)
    assert (result.returncode, result.stderr) == (0, "")
    assert [line for line in result.stdout.splitlines() if not line.startswith(" ")] == [
        line for name in BUILTINS for line in (f"{name}  (built in)", "")
    ]
    listed = json.loads(_templates(pipeline, "--format", "json").stdout)
    assert [(t["name"], t["builtin"], t["usedBy"]) for t in listed] == [
        (name, True, []) for name in BUILTINS
    ]


def test_templates_of_an_invalid_folder_exits_2_with_the_problem(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step("a", "uses: reporter\nwith: { who: a, cuont: 2 }")
    result = _templates(pipeline)
    assert result.returncode == 2, result.stderr
    assert 'spec.with.cuont: template reporter has no param "cuont"' in result.stderr
    assert result.stdout == ""


def test_plan_shows_a_step_built_on_a_template(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step(
        "a", "uses: reporter\nwith: { who: world, count: 3, tag: a }\nenv: { OVER: step }"
    )
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["step"] == "a"
    assert plan["file"] == str(pipeline.steps / "a.yaml")
    assert plan["templates"] == ["reporter"]
    assert {k: plan["env"][k] for k in ("WHO", "N", "KEEP", "OVER")} == {
        "WHO": "world", "N": "3", "KEEP": "template", "OVER": "step"
    }  # fmt: skip
    assert plan["workdir"] == str(pipeline.work.resolve())
    assert [c["run"][-3:] for c in plan["commands"]] == [["a.json", "hello world", "3"]]
    assert plan["status"] == {"count": 3, "greeting": "hi world x3"}
    assert not list(pipeline.work.glob("*.json"))  # a plan runs nothing


# -- more merging, chains by path, and what is still wrong -------------------------------------------


def test_inputs_secrets_and_values_merge_by_key_through_a_chain_by_path(pipeline: Pipeline) -> None:
    base = pipeline.steps / "templates" / "base" / "b.yaml"
    base.parent.mkdir(parents=True)
    base.write_text(
        template(
            "base",
            """
            workdir: ../../../work
            inputs:
              name: { query: .metadata.name }
              tier: { query: .spec.tier }
            secrets:
              TOKEN: { env: BASE_TOKEN }
            values:
              size: { from: inputs.tier, map: { small: 1, nginx: 2 } }
              label: { jmespath: "join('-', [inputs.name, 'base'])" }
            run: [[true]]
            """,
        )
    )
    # `uses:` by path in a template is relative to the template's own file.
    (pipeline.steps / "templates" / "mid.yaml").write_text(
        template("mid", "uses: ./base/b.yaml\ninputs: { ns: { query: .metadata.namespace } }\n")
    )
    pipeline.step(
        "a",
        """
        uses: ./templates/mid.yaml
        inputs: { tier: { query: .spec.image } }
        secrets: { TOKEN: { env: STEP_TOKEN, mask: false } }
        values: { label: { jmespath: "join('-', [inputs.name, 'step'])" } }
        """,
    )
    result = pipeline.run("plan", "--format", "json", env={"STEP_TOKEN": "t0k"})
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    assert plan["templates"] == ["mid", "base"]  # nearest first
    assert plan["inputs"] == {"name": "my-app", "tier": "nginx", "ns": "default"}
    assert plan["secrets"] == {"TOKEN": "t0k"}  # the step's secret, read from its variable
    assert plan["values"] == {"size": 2, "label": "my-app-step"}
    assert plan["workdir"] == str(pipeline.work.resolve())


def test_a_problem_in_a_template_two_levels_down_names_both_users(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "steps.d/templates/base/b.yaml",
        template("base", "run:\n  - [echo, '${{ inputs.zz }}']\n"),
    )
    mid = write(tmp_path, "steps.d/templates/mid.yaml", template("mid", "uses: ./base/b.yaml\n"))
    user = write(tmp_path, "steps.d/a.yaml", step("a", "uses: mid\n"))
    result = problems(tmp_path)
    line = (
        f'steps.d/templates/base/b.yaml:{where(base, "${{")}: spec.run[0][1]: unknown input "zz" '
        f"in ${{{{ inputs.zz }}}} (used by template mid at steps.d/templates/mid.yaml:"
        f"{line_of(mid, 'name: mid')}) (used by step a at steps.d/a.yaml:{line_of(user, 'name: a')})"
    )
    result.has(line, "no inputs are declared")
    assert problem_lines(result) == [line]


def test_a_template_path_with_a_param_inside_resolves_against_the_template(
    pipeline: Pipeline,
) -> None:
    (pipeline.steps / "templates" / "mods" / "m1").mkdir(parents=True)
    (pipeline.steps / "mods" / "m1").mkdir(parents=True)  # where it wrongly runs today
    (pipeline.steps / "templates" / "t.yaml").write_text(
        template(
            "module",
            f"""
            params: {{ m: {{ type: string }} }}
            workdir: "mods/${{{{ params.m }}}}"
            run: [[{PY}, -c, "import os; open('{pipeline.work}/pwd', 'w').write(os.getcwd())"]]
            """,
        )
    )
    pipeline.step("a", "uses: module\nwith: { m: m1 }")
    result = pipeline.run("run", "a")
    assert result.returncode == 0, result.stderr
    expected = pipeline.steps / "templates" / "mods" / "m1"
    assert (pipeline.work / "pwd").read_text() == str(expected.resolve())


def test_with_that_is_not_a_mapping_says_so(tmp_path: Path) -> None:
    write(tmp_path, "steps.d/t.yaml", template("greet", GREET))
    text = write(tmp_path, "steps.d/a.yaml", step("a", "uses: greet\nwith: [who, world]\n"))
    result = problems(tmp_path)
    line = f"steps.d/a.yaml:{where(text, '[who')}: spec.with: expected a mapping, got a list"
    result.has(line, "write key: value pairs, without the leading '-'")
    assert problem_lines(result) == [line]


def test_a_template_changed_after_the_stamp_is_checked_again_when_run(pipeline: Pipeline) -> None:
    path = _reporter(pipeline)
    pipeline.step("a", "uses: reporter\nwith: { who: world, tag: a }")
    stamped = _runner(pipeline, "validate", "--stamp", "steps.d")
    assert stamped.returncode == 0, stamped.stderr
    assert stamped.stdout == "ok: 1 step and 1 template in 2 files\n"
    assert pipeline.run("run").returncode == 0
    assert _report(pipeline, "a")["argv"] == ["hello world", "1"]
    text = path.read_text().replace("who: { type: string }", "who: { type: integer }")
    path.write_text(text)
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    step_file = pipeline.steps / "a.yaml"
    at = where(step_file.read_text(), "world")
    assert f'{step_file}:{at}: spec.with.who: param who: expected integer, found "world"' in (
        result.stderr.splitlines()
    )


def test_on_outputs_and_typed_params_come_from_the_template(pipeline: Pipeline) -> None:
    (pipeline.steps / "t.yaml").write_text(
        template(
            "t",
            """
            on: { action: [delete] }
            params:
              my-param: { type: string }
              obj: { type: object }
              flag: { type: boolean, default: true }
              ratio: { type: number, default: 0.5 }
            workdir: ../work
            run: [[echo, "${{ params.my-param }} ${{ params.obj.k }}"]]
            outputs: { o1: { jmespath: "'t1'" }, o2: { jmespath: "'t2'" } }
            status:
              flag: "${{ params.flag }}"
              ratio: "${{ params.ratio }}"
              k: "${{ params.obj.k }}"
              text: "${{ params.my-param }}"
            """,
        )
    )
    pipeline.step(
        "a",
        "uses: t\nwith: { my-param: hy, obj: { k: 7 } }\noutputs: { o2: { jmespath: \"'s2'\" } }",
    )
    configure = pipeline.run("run")
    assert configure.returncode == 0, configure.stderr
    assert "step a started" not in configure.stderr  # the template's `on` is the step's
    assert "(a: on.action is delete but KRATIX_WORKFLOW_ACTION is configure)" in configure.stderr
    result = pipeline.run("run", env={"KRATIX_WORKFLOW_ACTION": "delete"})
    assert result.returncode == 0, result.stderr
    assert "runner: [a] ▶ echo 'hy 7'" in result.stderr.splitlines()
    assert pipeline.status() == {"flag": True, "ratio": 0.5, "k": 7, "text": "hy"}
    recorded = json.loads((pipeline.metadata / "runner" / "outputs" / "a.json").read_text())
    assert recorded["outputs"] == {"o1": "t1", "o2": "s2"}


def test_pipeline_has_a_container_per_step_and_none_for_templates(pipeline: Pipeline) -> None:
    _reporter(pipeline)
    pipeline.step("b", "uses: reporter\nwith: { who: b }")
    pipeline.step("a", "run: [[true]]")
    result = _runner(pipeline, "pipeline", "--steps-dir", "steps.d", "--image", "img:1")
    assert result.returncode == 0, result.stderr
    [doc] = [d for d in yaml.safe_load_all(result.stdout) if d]
    containers = doc["spec"]["containers"]
    assert [(c["name"], c["command"]) for c in containers] == [
        ("a", ["runner", "run", "a"]),
        ("b", ["runner", "run", "b"]),
    ]


def test_a_deep_chain_of_templates_is_not_called_a_loop(tmp_path: Path) -> None:
    for i in range(12):
        spec = "run: [[echo]]\n" if i == 11 else f"uses: t{i + 1}\n"
        write(tmp_path, f"steps.d/t{i}.yaml", template(f"t{i}", spec))
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: t0\n"))
    result = problems(tmp_path)
    assert not [line for line in result.lines if "in a loop" in line], result.err


def test_a_with_path_resolves_against_the_file_that_wrote_it_through_a_chain(
    pipeline: Pipeline,
) -> None:
    templates = pipeline.steps / "templates"
    (templates / "base").mkdir(parents=True)
    (templates / "mdir").mkdir()
    (pipeline.root / "cm.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-root"}}'
    )
    (templates / "base" / "b.yaml").write_text(
        template(
            "base",
            f"""
            params: {{ dir: {{ type: string }}, from: {{ type: string }} }}
            workdir: "${{{{ params.dir }}}}"
            manifests: [{{ path: x.yaml, from: "${{{{ params.from }}}}" }}]
            run: [[{PY}, -c, "import os; open('{pipeline.work}/pwd', 'w').write(os.getcwd())"]]
            """,
        )
    )
    # mid's `dir` is written in mid's file; `from` is passed on from the step's `with:`.
    (templates / "mid.yaml").write_text(
        template(
            "mid",
            "params: { f: { type: string } }\nuses: ./base/b.yaml\n"
            "with: { dir: ./mdir, from: '${{ params.f }}' }\n",
        )
    )
    (pipeline.steps / "sub").mkdir()
    pipeline.step("a", "uses: mid\nwith: { f: ../../cm.json }", file="sub/a.yaml")
    result = pipeline.run("run")
    assert result.returncode == 0, result.stderr
    assert (pipeline.work / "pwd").read_text() == str((templates / "mdir").resolve())
    [doc] = [d for d in yaml.safe_load_all((pipeline.output / "x.yaml").read_text()) if d]
    assert doc["metadata"] == {"name": "from-root"}


def test_a_field_typo_in_a_template_is_not_blamed_on_the_with_values_it_holds(
    tmp_path: Path,
) -> None:
    spec = "params: { data: { type: string } }\nmanifest:\n  - { path: x.yaml, document: { v: '${{ params.data }}' } }\n"
    tpl = write(tmp_path, "steps.d/t.yaml", template("t", spec))
    write(tmp_path, "steps.d/a.yaml", step("a", "uses: t\nwith: { data: '${{ inputs.d }}' }\n"
                                          "inputs: { d: { query: .spec.d } }\n"))  # fmt: skip
    result = problems(tmp_path)
    line = f'steps.d/t.yaml:{where(tpl, "manifest:")}: spec.manifest: unknown field "manifest"'
    result.has(line, 'did you mean "manifests"?')
    assert problem_lines(result) == [line]


def test_a_problem_with_a_with_value_is_located_at_it_under_the_path_it_took(
    tmp_path: Path,
) -> None:
    spec = "params: { base: { type: string } }\nmanifests: [{ path: x.yaml, from: '${{ params.base }}' }]\n"
    write(tmp_path, "steps.d/t.yaml", template("t", spec))
    text = write(
        tmp_path, "steps.d/a.yaml", step("a", "uses: t\nwith: { base: ../nothing.yaml }\n")
    )
    result = problems(tmp_path)
    result.has(
        f"steps.d/a.yaml:{where(text, '../nothing')}: spec.manifests[0].from: base file "
        '"../nothing.yaml" not found',
        "the path is relative to this step file's folder",
    )


def test_a_file_that_is_no_step_in_the_steps_folder_is_told_to_move(tmp_path: Path) -> None:
    text = write(
        tmp_path, "steps.d/base.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n"
    )
    result = problems(tmp_path)
    result.has(
        f'steps.d/base.yaml:{where(text, "ConfigMap")}: kind: "ConfigMap" is not one of "Step", '
        '"StepTemplate"',
        "only steps and templates belong in the steps folder; keep other files outside it",
    )
