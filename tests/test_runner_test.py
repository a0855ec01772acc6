"""`runner test`: case folders run against the steps, results diffed, expectations updated."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from tests.conftest import REPO, base_env

APP = REPO / "examples" / "app-promise"
EXAMPLE_CASES = sorted(p for p in (APP / "tests").iterdir() if p.is_dir())


def runner_test(tmp_path: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None):
    (tmp_path / "tmp").mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "runner", "test", "--color", "never", *args],
        cwd=cwd, env={**base_env(tmp_path), **(env or {})}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


@pytest.fixture
def promise(tmp_path: Path) -> Path:
    """A copy of the App Promise's steps and cases, to break and repair."""
    root = tmp_path / "app-promise"
    shutil.copytree(APP / "steps.d", root / "steps.d")
    shutil.copytree(APP / "tests", root / "tests")
    return root


def write_step(steps: Path, name: str, spec: str) -> None:
    steps.mkdir(parents=True, exist_ok=True)
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    (steps / f"{name}.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\n"
        f"metadata:\n  name: {name}\nspec:\n{body}\n"
    )


def make_case(folder: Path, request: dict | None = None, **files: str) -> Path:
    (folder / "input").mkdir(parents=True)
    request = request or {"apiVersion": "workshop.kratix.io/v1", "kind": "App",
                          "metadata": {"name": "my-app", "namespace": "default"}}
    (folder / "input" / "object.yaml").write_text(yaml.safe_dump(request))
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(textwrap.dedent(text))
    return folder


def test_the_example_cases_pass(tmp_path):
    result = runner_test(tmp_path, *(str(p.relative_to(REPO)) for p in EXAMPLE_CASES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(EXAMPLE_CASES)} passed, 0 failed" in result.stdout
    assert "PASS examples/app-promise/tests/defaults" in result.stdout
    assert "exit 2 as expected" in result.stdout  # bad-port expects the input rule to stop it


def test_a_folder_of_cases_stands_for_the_cases_in_it(tmp_path):
    result = runner_test(tmp_path, "examples/app-promise")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(EXAMPLE_CASES)} passed" in result.stdout


def test_wrong_expectations_fail_with_a_diff_and_update_fixes_them(tmp_path, promise):
    case = promise / "tests" / "defaults"
    status = case / "metadata" / "status.yaml"
    status.write_text(status.read_text().replace("runs syntasso/sample-todo", "runs nginx"))
    (case / "output" / "app" / "service.yaml").unlink()
    (case / "output" / "app" / "ingress.yaml").write_text("kind: Ingress\n")

    failed = runner_test(tmp_path, str(case))
    out = failed.stdout
    assert failed.returncode == 1, out + failed.stderr
    assert "FAIL" in out and "0 passed, 1 failed" in out
    assert "metadata/status.yaml: differs" in out
    assert "--- expected/metadata/status.yaml" in out and "+++ actual/metadata/status.yaml" in out
    assert "-message: App my-app runs nginx:v0.1.0" in out
    assert "+message: App my-app runs syntasso/sample-todo:v0.1.0" in out
    assert "output/app/service.yaml: produced, but not expected" in out
    assert "+kind: Service" in out
    assert "output/app/ingress.yaml: expected, but not produced" in out

    updated = runner_test(tmp_path, "--update", str(case))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert "UPDATED" in updated.stdout and "wrote metadata/status.yaml" in updated.stdout
    assert not (case / "output" / "app" / "ingress.yaml").exists()
    assert (case / "output" / "app" / "service.yaml").is_file()

    again = runner_test(tmp_path, str(case))
    assert again.returncode == 0, again.stdout
    assert "1 passed, 0 failed" in again.stdout


def test_yaml_is_compared_as_data_not_as_text(tmp_path, promise):
    case = promise / "tests" / "defaults"
    status = case / "metadata" / "status.yaml"
    data = yaml.safe_load(status.read_text())
    # Reordered keys, flow style, different quoting: the same data.
    status.write_text("{" + ", ".join(f'{k}: "{v}"' for k, v in reversed(data.items())) + "}\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 0, result.stdout


def test_update_leaves_files_that_are_equal_as_data_alone(tmp_path, promise):
    case = promise / "tests" / "defaults"
    deployment = case / "output" / "app" / "deployment.yaml"
    hand_written = "# kept\n" + deployment.read_text()
    deployment.write_text(hand_written)
    (case / "metadata" / "status.yaml").write_text("message: stale\n")
    assert runner_test(tmp_path, "--update", str(case)).returncode == 0
    assert deployment.read_text() == hand_written


def test_a_case_without_a_request_is_a_bad_case_folder_and_nothing_runs(tmp_path, promise):
    bad = promise / "tests" / "no-request"
    (bad / "output").mkdir(parents=True)
    result = runner_test(tmp_path, str(promise / "tests" / "defaults"), str(bad))
    assert result.returncode == 2
    assert "no-request: no request: input/object.yaml is missing" in result.stderr
    assert "no case was run" in result.stderr
    assert "PASS" not in result.stdout


def test_a_folder_that_holds_no_cases_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner_test(tmp_path, str(tmp_path / "empty"), str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "no input/object.yaml in this folder or below" in result.stderr
    assert "missing: no such folder" in result.stderr


def test_case_yaml_mistakes_are_located_with_a_suggestion(tmp_path, promise):
    case_yaml = "exepct:\n  exitCode: 2\naction: destroy\n"
    case = make_case(promise / "tests" / "typo", case_yaml=case_yaml)
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 2
    assert re.search(r'typo/case.yaml:\d+:\d+: exepct: unknown option "exepct"', result.stderr)
    assert 'did you mean "expect"?' in result.stderr
    assert "action: expected configure or delete, found 'destroy'" in result.stderr


def test_an_env_file_line_that_is_not_key_value_is_reported_without_its_text(tmp_path, promise):
    case = make_case(promise / "tests" / "bad-env", env="# comment\nGOOD=1\nhunter2-not-a-pair\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 2
    assert "bad-env/env:3:1: expected KEY=VALUE" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.slow
def test_secrets_from_the_env_file_never_appear_in_what_is_printed_or_written(tmp_path):
    declared, undeclared = "s3cr3t-$value-that-is-long", "db-password-0xdeadbeef"
    write_step(tmp_path / "steps.d", "leaky", """
        secrets:
          TOKEN: { env: MY_TOKEN }
        run:
          - script: |
              echo "token=$TOKEN password=$DB_PASSWORD"
              echo "token=$TOKEN" >&2
              mkdir -p "$KRATIX_OUTPUT_DIR"
              printf 'token: %s\\npassword: %s\\n' "$TOKEN" "$DB_PASSWORD" \\
                > "$KRATIX_OUTPUT_DIR/leak.yaml"
              exit 3
    """)
    case = make_case(
        tmp_path / "tests" / "leak",
        env=f"# secrets are fine here\nMY_TOKEN='{declared}'\nexport DB_PASSWORD={undeclared}\n",
    )
    failed = runner_test(tmp_path, "-v", str(case))
    printed = failed.stdout + failed.stderr
    assert failed.returncode == 1
    assert "exit code 1, expected 0" in printed
    assert "output/leak.yaml: produced, but not expected" in printed
    assert "+token: '***'" in printed or "+token: ***" in printed
    assert declared not in printed and undeclared not in printed
    assert "token=***" in printed

    # An expectation of failure, written by --update: the expected files hold *** only.
    (case / "case.yaml").write_text("expect:\n  exitCode: 1\n  stdoutContains: token=***\n")
    updated = runner_test(tmp_path, "--update", str(case))
    assert updated.returncode == 0, updated.stdout
    written = (case / "output" / "leak.yaml").read_text()
    assert declared not in written and undeclared not in written and "***" in written
    again = runner_test(tmp_path, str(case))
    assert again.returncode == 0, again.stdout
    assert declared not in again.stdout + again.stderr


def test_an_expected_failure_passes_and_an_unexpected_success_fails(tmp_path, promise):
    bad_port = promise / "tests" / "bad-port"
    assert runner_test(tmp_path, str(bad_port)).returncode == 0
    request = bad_port / "input" / "object.yaml"
    request.write_text(request.read_text().replace("port: http", "port: 80"))
    result = runner_test(tmp_path, str(bad_port))
    assert result.returncode == 1
    assert "exit code 0, expected 2" in result.stdout
    assert "stderr does not contain 'input \"port\"'" in result.stdout
    assert "stderr of runner run" in result.stdout  # the run's log helps to see why


def test_each_run_gets_a_fresh_state_store(tmp_path):
    write_step(tmp_path / "steps.d", "counter", """
        state:
          store: local
          files: [{ path: count.txt }]
        workdir: work
        copyWorkdir: true
        run:
          - script: echo $(( $(cat count.txt 2>/dev/null || echo 0) + 1 )) > count.txt
        status:
          runs: { file: count.txt }
    """)
    (tmp_path / "steps.d" / "work").mkdir()
    case = make_case(tmp_path / "tests" / "count")
    (case / "metadata").mkdir()
    (case / "metadata" / "status.yaml").write_text("runs: 1\n")
    for _ in range(2):
        result = runner_test(tmp_path, str(case))
        assert result.returncode == 0, result.stdout


def test_steps_action_and_steps_dir_come_from_the_case(tmp_path):
    steps = tmp_path / "elsewhere"
    write_step(steps, "on-configure", "run: [[bash, -c, 'echo 1 > $KRATIX_OUTPUT_DIR/a.txt']]")
    write_step(steps, "on-delete", """
        on: { action: delete }
        run: [[bash, -c, 'echo "$KRATIX_WORKFLOW_ACTION" > $KRATIX_OUTPUT_DIR/b.txt']]
    """)
    write_step(steps, "other", "run: [[bash, -c, 'echo other > $KRATIX_OUTPUT_DIR/c.txt']]")
    deleted = make_case(
        tmp_path / "cases" / "delete", case_yaml="stepsDir: ../../elsewhere\naction: delete\n"
    )
    named = make_case(tmp_path / "cases" / "named", steps="# just this one\nother\n")
    (deleted / "output").mkdir()
    (deleted / "output" / "b.txt").write_text("delete\n")
    (named / "output").mkdir()
    (named / "output" / "c.txt").write_text("other\n")
    result = runner_test(tmp_path, "--steps-dir", str(steps), str(deleted), str(named))
    assert result.returncode == 0, result.stdout


def test_a_case_that_runs_too_long_fails_with_a_timeout(tmp_path):
    write_step(tmp_path / "steps.d", "slow", "run: [[sleep, '30']]")
    case = make_case(tmp_path / "tests" / "slow", case_yaml="timeout: 1s\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 1
    assert "timed out after 1s" in result.stdout


@pytest.mark.slow
def test_junit_report(tmp_path, promise):
    status = promise / "tests" / "defaults" / "metadata" / "status.yaml"
    status.write_text("message: wrong\n")
    report = tmp_path / "report.xml"
    result = runner_test(tmp_path, "--junit", str(report), str(promise / "tests"))
    assert result.returncode == 1
    suite = ElementTree.parse(report).getroot()
    assert suite.get("tests") == str(len(EXAMPLE_CASES)) and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None and "metadata/status.yaml" in (failure.get("message") or "")


def test_secrets_declared_mask_false_are_shown_as_runner_run_shows_them(tmp_path):
    write_step(tmp_path / "steps.d", "endpoint", """
        secrets:
          ENDPOINT:  { env: MINIO_ENDPOINT, mask: false }
          TOKEN_URL: { env: PUBLIC_TOKEN_URL, mask: false }   # named like a secret, declared not
          PASSWORD:  { env: MINIO_PASSWORD }
        run:
          - script: |
              echo "endpoint=$ENDPOINT url=$TOKEN_URL password=$PASSWORD"
              printf 'endpoint: %s\\n' "$ENDPOINT" > "$KRATIX_OUTPUT_DIR/endpoint.yaml"
    """)
    case = make_case(
        tmp_path / "tests" / "shown",
        env="MINIO_ENDPOINT=minio.example:9000\nPUBLIC_TOKEN_URL=https://auth.example/token\n"
        "MINIO_PASSWORD=a-password-long-enough\n",
    )
    (case / "output").mkdir()
    (case / "output" / "endpoint.yaml").write_text("endpoint: minio.example:9000\n")
    result = runner_test(tmp_path, "-v", str(case))
    assert result.returncode == 0, result.stdout + result.stderr
    line = "endpoint=minio.example:9000 url=https://auth.example/token password=***"
    assert line in result.stdout
    assert "a-password-long-enough" not in result.stdout + result.stderr

    # case.yaml's `secrets:` still masks a variable, whatever the steps say.
    (case / "case.yaml").write_text("secrets: [MINIO_ENDPOINT]\n")
    masked = runner_test(tmp_path, "-v", str(case))
    assert masked.returncode == 1  # the produced file holds *** now, the expected one doesn't
    assert "endpoint=*** url=https://auth.example/token password=***" in masked.stdout


COUNTER = """
    inputs: {name: {query: .metadata.name}}
    state:
      store: configmap          # runner test puts every step's state in a local store
      name: "${{ inputs.name }}-counter"
      namespace: "${{ kratix.object.namespace }}"
      files: [{ path: count.txt, key: count }]
    workdir: work
    copyWorkdir: true
    run:
      - script: |
          echo "previous: $(cat count.txt 2>/dev/null || echo none)"
          echo $(( $(cat count.txt 2>/dev/null || echo 0) + 1 )) > count.txt
    status:
      runs: { file: count.txt }
"""


def test_a_case_starts_from_the_state_in_its_state_folder(tmp_path):
    write_step(tmp_path / "steps.d", "counter", COUNTER)
    (tmp_path / "steps.d" / "work").mkdir()
    request = {"apiVersion": "workshop.kratix.io/v1", "kind": "App",
               "metadata": {"name": "my-app", "namespace": "team-a"}}  # fmt: skip
    case = make_case(tmp_path / "tests" / "second-run", request,
                     case_yaml="expect: {stdoutContains: 'previous: 41'}\n")  # fmt: skip
    (case / "state" / "counter").mkdir(parents=True)
    (case / "state" / "counter" / "count").write_text("41\n")
    (case / "metadata").mkdir()
    (case / "metadata" / "status.yaml").write_text("runs: 42\n")
    for _ in range(2):  # each run starts from the seed again, not from the last run's state
        result = runner_test(tmp_path, str(case))
        assert result.returncode == 0, result.stdout + result.stderr
    assert (case / "state" / "counter" / "count").read_text() == "41\n"

    first_run = make_case(tmp_path / "tests" / "first-run", request,
                          case_yaml="expect: {stdoutContains: 'previous: none'}\n")  # fmt: skip
    (first_run / "metadata").mkdir()
    (first_run / "metadata" / "status.yaml").write_text("runs: 1\n")
    assert runner_test(tmp_path, str(first_run)).returncode == 0


def test_state_folder_mistakes_are_reported_and_nothing_runs(tmp_path):
    write_step(tmp_path / "steps.d", "counter", COUNTER)
    write_step(tmp_path / "steps.d", "stateless", "run: [[true]]")
    case = make_case(tmp_path / "tests" / "bad-state")
    for path in ("countr/count", "counter/cout", "counter/count", "stateless/x", "counter/.gitkeep"):
        (case / "state" / path).parent.mkdir(parents=True, exist_ok=True)
        (case / "state" / path).write_text("1\n")
    (case / "state" / "loose-file").write_text("1\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert 'bad-state/state/countr: no step named "countr"\n  hint: did you mean "counter"?' in err
    assert ('bad-state/state/counter/cout: step counter has no state key "cout"\n'
            '  hint: did you mean "count"?') in err  # fmt: skip
    assert "bad-state/state/stateless: step stateless keeps no state" in err
    assert "bad-state/state/loose-file: a file directly in state/" in err
    assert ".gitkeep" not in err
    assert "no case was run" in err and "PASS" not in result.stdout


def test_a_seeded_step_that_refuses_the_request_is_left_to_the_run_to_report(tmp_path):
    write_step(tmp_path / "steps.d", "counter", COUNTER.replace(
        "{query: .metadata.name}", "{query: .metadata.name, pattern: '^[a-z]+$'}"))  # fmt: skip
    request = {"metadata": {"name": "Not_A_Name", "namespace": "default"}}
    case = make_case(tmp_path / "tests" / "refused", request,
                     case_yaml="expect: {exitCode: 2, stderrContains: 'does not match pattern'}\n")  # fmt: skip
    (case / "state" / "counter").mkdir(parents=True)
    (case / "state" / "counter" / "count").write_text("41\n")
    result = runner_test(tmp_path, "-v", str(case))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runner test: warning: state/counter not seeded:" in result.stdout


VOLATILE = """
    workdir: work
    copyWorkdir: true
    run:
      - script: |
          now=$(date +%s%N)
          echo "$now" > now.txt
          mkdir -p "$KRATIX_OUTPUT_DIR/app"
          printf 'kind: Thing\\nmetadata: {name: x, annotations: {example.com/built-at: "%s"}}\\n' \\
            "$now" > "$KRATIX_OUTPUT_DIR/app/thing.yaml"
          printf 'conditions:\\n- {type: Ready, lastTransitionTime: "%s"}\\n' "$now" \\
            >> "$KRATIX_OUTPUT_DIR/app/thing.yaml"
          printf '{"id": "%s", "name": "x"}\\n' "$now" > "$KRATIX_OUTPUT_DIR/app/info.json"
    status:
      message: done
      lastRun: { file: now.txt }
"""


def volatile_case(tmp_path: Path, case_yaml: str) -> Path:
    write_step(tmp_path / "steps.d", "volatile", VOLATILE)
    (tmp_path / "steps.d" / "work").mkdir(exist_ok=True)
    case = make_case(tmp_path / "tests" / "volatile", case_yaml=case_yaml)
    (case / "metadata").mkdir()
    (case / "metadata" / "status.yaml").write_text("message: done\nlastRun: 1\n")
    (case / "output" / "app").mkdir(parents=True)
    (case / "output" / "app" / "thing.yaml").write_text(textwrap.dedent("""\
        kind: Thing
        metadata: {name: x, annotations: {example.com/built-at: "1"}}
        conditions:
        - {type: Ready, lastTransitionTime: "1"}
    """))
    (case / "output" / "app" / "info.json").write_text('{"name": "x"}\n')  # no id at all
    return case


IGNORE = """\
ignore:
  metadata/status.yaml: lastRun
  output/app/thing.yaml:
    - .metadata.annotations."example.com/built-at"
    - .conditions[*].lastTransitionTime
  output/app/info.json: [.id]
"""


def test_ignored_fields_are_left_out_of_the_comparison(tmp_path):
    case = volatile_case(tmp_path, IGNORE)
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 0, result.stdout + result.stderr

    # Without them, the same case fails on each volatile field.
    (case / "case.yaml").write_text("")
    failed = runner_test(tmp_path, str(case))
    assert failed.returncode == 1
    for path in ("metadata/status.yaml", "output/app/thing.yaml", "output/app/info.json"):
        assert f"{path}: differs" in failed.stdout


def test_ignoring_a_field_still_compares_the_rest_of_the_file(tmp_path):
    case = volatile_case(tmp_path, IGNORE)
    status = case / "metadata" / "status.yaml"
    status.write_text("message: not done\nlastRun: 1\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 1
    assert "metadata/status.yaml: differs" in result.stdout
    assert "-message: not done" in result.stdout and "+message: done" in result.stdout
    assert "lastRun" not in result.stdout  # the diff is of what is compared
    assert "output/app" not in result.stdout

    # --update leaves the file's ignored fields to what the run produced: still ignored.
    assert runner_test(tmp_path, "--update", str(case)).returncode == 0
    assert runner_test(tmp_path, str(case)).returncode == 0


def test_ignore_mistakes_are_located(tmp_path):
    case = volatile_case(tmp_path, textwrap.dedent("""\
        ignore:
          metadata/status.yaml: [.lastRun, ".a // 1", ".a["]
          output/app/notes.txt: [.x]
          input/object.yaml: [.metadata]
          metadata/status.yml: .
    """))
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert re.search(r'case.yaml:2:\d+: ignore\["metadata/status.yaml"\]\[1\]: \'.a // 1\' is '
                     r'not a field path: "//" picks a value', err)  # fmt: skip
    assert re.search(r'case.yaml:2:\d+: ignore\["metadata/status.yaml"\]\[2\]: \'.a\[\' is not '
                     r'a field path: unclosed "\["', err)  # fmt: skip
    assert ('ignore["output/app/notes.txt"]: fields can be ignored in YAML and JSON files only'
            in err)  # fmt: skip
    assert 'ignore["input/object.yaml"]: expected a file of the expected trees' in err
    assert ('ignore["metadata/status.yml"]: \'.\' is not a field path: it is the whole document'
            in err)  # fmt: skip
    assert "no case was run" in err


def test_json_format_is_one_document_with_each_cases_status_differences_and_duration(
    tmp_path, promise
):
    status = promise / "tests" / "defaults" / "metadata" / "status.yaml"
    status.write_text(status.read_text().replace("runs syntasso/sample-todo", "runs nginx"))
    (promise / "tests" / "defaults" / "output" / "app" / "service.yaml").unlink()
    result = runner_test(tmp_path, "--format", "json", str(promise / "tests"))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # the whole of stdout: nothing else is printed there
    assert report["passed"] is False
    assert report["summary"] == {"cases": len(EXAMPLE_CASES), "passed": len(EXAMPLE_CASES) - 1,
                                 "failed": 1, "errors": 0, "updated": 0}  # fmt: skip
    assert report["duration"] > 0
    by_name = {c["name"].rsplit("/", 1)[1]: c for c in report["cases"]}
    assert set(by_name) == {p.name for p in EXAMPLE_CASES}
    assert by_name["bad-port"]["status"] == "pass" and by_name["bad-port"]["exitCode"] == 2
    failed = by_name["defaults"]
    assert failed["status"] == "fail" and failed["exitCode"] == 0 and failed["duration"] > 0
    differences = {d["file"]: d for d in failed["differences"]}
    assert set(differences) == {"metadata/status.yaml", "output/app/service.yaml"}
    changed = differences["metadata/status.yaml"]
    assert changed["kind"] == "changed"
    assert "-message: App my-app runs nginx:v0.1.0" in changed["diff"].splitlines()
    assert "+message: App my-app runs syntasso/sample-todo:v0.1.0" in changed["diff"].splitlines()
    assert differences["output/app/service.yaml"]["kind"] == "unexpected"
    assert "step render-manifests started" in failed["stderr"]


def test_json_format_reports_bad_case_folders_too(tmp_path):
    result = runner_test(tmp_path, "--format", "json", str(tmp_path / "missing"))
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["cases"] == []
    assert report["problems"][0]["message"].startswith("no such folder")
    assert "missing: no such folder" in result.stderr


def test_json_status_of_a_case_that_could_not_be_run_is_error(tmp_path):
    from runner.cases.case import Case
    from runner.cases.report import json_report
    from runner.cases.runcase import Result

    broken = Result(Case(tmp_path, tmp_path), error="cannot run the case: No space left")
    [case] = json_report([broken], 0.1)["cases"]
    assert case["status"] == "error" and case["error"] == "cannot run the case: No space left"


def outputs_steps(tmp_path: Path) -> Path:
    """A steps folder where `report` reads the outputs `bucket` records in an earlier container."""
    steps = tmp_path / "steps.d"
    write_step(steps, "bucket", """
        run: [[bash, -c, 'echo http://minio:9000/my-app > url.txt']]
        outputs:
          url: { file: url.txt }
          token: { jmespath: "'not-the-real-one'", sensitive: true }
    """)
    write_step(steps, "report", """
        status:
          bucket: "${{ steps.bucket.outputs.url }}"
    """)
    write_step(steps, "fails", "run: [[bash, -c, 'exit 3']]")
    return steps


def test_a_step_reads_the_outputs_the_case_gives_for_earlier_containers(tmp_path):
    outputs_steps(tmp_path)
    case = make_case(tmp_path / "tests" / "later-container", case_yaml="""\
        steps: [report]
        stepOutputs:
          bucket: { url: "http://minio:9000/from-the-case" }
    """)
    (case / "metadata").mkdir()
    (case / "metadata" / "status.yaml").write_text("bucket: http://minio:9000/from-the-case\n")
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout


def test_the_runner_folder_is_compared_only_when_the_case_expects_it(tmp_path):
    outputs_steps(tmp_path)
    secret = "bucket-token-0123456789"
    # A container whose command fails still leaves the earlier containers' records, and keeps
    # this test about the comparison alone.
    case = make_case(tmp_path / "tests" / "records", case_yaml=f"""\
        steps: [fails]
        expect: {{ exitCode: 1 }}
        stepOutputs:
          bucket: {{ url: "http://minio:9000/my-app", token: "{secret}", replicas: 3 }}
        sensitiveOutputs:
          bucket: [token]
    """)
    # The seeded runner/outputs/bucket.json is in the produced metadata: left out, not expected.
    result = runner_test(tmp_path, str(case))
    assert result.returncode == 0, result.stdout + result.stderr

    record = case / "metadata" / "runner" / "outputs" / "bucket.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"step": "bucket", "outputs": {"url": "http://elsewhere"}}))
    failed = runner_test(tmp_path, str(case))
    printed = failed.stdout + failed.stderr
    assert failed.returncode == 1, printed
    assert "metadata/runner/outputs/bucket.json: differs" in printed
    assert '-    "url": "http://elsewhere"' in printed
    assert '+    "replicas": 3,' in printed and '+    "token": "***",' in printed
    assert '"sensitive": [' in printed and secret not in printed

    updated = runner_test(tmp_path, "--update", str(case))
    assert updated.returncode == 0, updated.stdout + updated.stderr
    written = json.loads(record.read_text())
    assert written["outputs"] == {"url": "http://minio:9000/my-app", "token": "***", "replicas": 3}
    assert written["step"] == "bucket" and written["sensitive"] == ["token"]
    assert runner_test(tmp_path, str(case)).returncode == 0


def test_step_outputs_mistakes_are_located(tmp_path):
    outputs_steps(tmp_path)
    wrong = make_case(tmp_path / "tests" / "wrong", case_yaml="""\
        stepOutputs:
          Not_A_Step: { url: x }
          listed: [url]
          bucket: { url: x, "9lives": 1 }
        sensitiveOutputs:
          bucket: [ulr, url, [url]]
          report: token
    """)
    shapes = make_case(tmp_path / "tests" / "shapes", case_yaml="""\
        stepOutputs: http://minio
        sensitiveOutputs: [token]
        stepOutput: {}
    """)
    result = runner_test(tmp_path, str(wrong), str(shapes))
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert re.search(r'wrong/case.yaml:2:\d+: stepOutputs.Not_A_Step: "Not_A_Step" is not a step '
                     r"name", err)  # fmt: skip
    assert re.search(r"wrong/case.yaml:3:\d+: stepOutputs.listed: expected a mapping of output "
                     r"name to value", err)  # fmt: skip
    assert re.search(r'wrong/case.yaml:4:\d+: stepOutputs.bucket\["9lives"\]: "9lives" is not an '
                     r"output name", err)  # fmt: skip
    assert re.search(r'wrong/case.yaml:6:\d+: sensitiveOutputs.bucket\[0\]: "ulr" is not an '
                     r'output of stepOutputs.bucket\n  hint: did you mean "url"\?', err)  # fmt: skip
    assert "sensitiveOutputs.bucket[1]" not in err
    assert re.search(r'sensitiveOutputs.bucket\[2\]: "\[\'url\'\]" is not an output', err)
    assert re.search(r'wrong/case.yaml:7:\d+: sensitiveOutputs.report: "token" is not an output '
                     r"of stepOutputs.report", err)  # fmt: skip
    assert re.search(r"shapes/case.yaml:1:\d+: stepOutputs: expected a mapping of step to "
                     r"outputs", err)  # fmt: skip
    assert re.search(r"shapes/case.yaml:2:\d+: sensitiveOutputs: expected a mapping of step to "
                     r"output names", err)  # fmt: skip
    assert 'unknown option "stepOutput"' in err and 'did you mean "stepOutputs"?' in err
    assert "no case was run" in err


def test_a_sensitive_output_too_short_to_mask_is_a_warning_naming_case_yaml(tmp_path):
    outputs_steps(tmp_path)
    case = make_case(tmp_path / "tests" / "short", case_yaml="""\
        steps: [fails]
        expect: { exitCode: 1 }
        stepOutputs: { bucket: { token: abc } }
        sensitiveOutputs: { bucket: token }
    """)
    result = runner_test(tmp_path, "-v", str(case))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"runner test: warning: \S*short/case.yaml: secret steps.bucket.outputs.token "
                     r"is shorter than \d+ characters", result.stdout), result.stdout  # fmt: skip
