"""`on.promise` as one name or a list: what validate accepts and refuses, which steps `run`
chooses for each KRATIX_PROMISE_NAME, and how a mismatch reads."""

from __future__ import annotations

import json

import pytest

from runner.stepfile.model import Trigger
from tests.test_run_kratix import marker_step, ran
from tests.test_validate import invalid, step, validate, where


@pytest.mark.parametrize("promise", ["app", "[app]", "[app, app-v2]"])
def test_one_name_or_a_list_of_names_is_valid(tmp_path, promise):
    (tmp_path / "a.yaml").write_text(step(spec=f"on: {{ promise: {promise} }}\nrun: [[echo]]\n"))
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


@pytest.mark.parametrize(
    ("promise", "needle", "path", "message"),
    [
        ("[app, app]", "app]", "spec.on.promise[1]", '"app" is listed twice'),
        ("[]", "[]", "spec.on.promise", "must not be empty"),
        ("[app, 3]", "3]", "spec.on.promise[1]", "expected a string, got an integer"),
        (
            "{ name: app }",
            "{ name",
            "spec.on.promise",
            "expected a string or a list, got a mapping",
        ),
    ],
    ids=["duplicate", "empty", "not-a-string", "mapping"],
)
def test_a_bad_promise_list_is_a_located_problem(tmp_path, promise, needle, path, message):
    text = step(spec=f"on: {{ promise: {promise} }}\nrun: [[echo]]\n")
    result = invalid(tmp_path, text)
    result.has(f"a.yaml:{where(text, needle)}: {path}: {message}")


def test_a_template_in_a_promise_list_is_not_expanded(tmp_path):
    text = step(spec='inputs: { name: { query: .a } }\non: { promise: [app, "${{ inputs.name }}"] }'
                     "\nrun: [[echo]]\n")  # fmt: skip
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, '${{')}: spec.on.promise[1]: templates are not expanded here",
        "templates work in env values, workdir, state.name, state.namespace, state.bucket, argv "
        "items, command env values, command workdir, stdin, status values, manifest path, "
        "manifest from, manifests, destinations, output from, waitFor.message and suspend.message",
    )


@pytest.mark.parametrize("promise", ["app", "app-v2"])
def test_a_step_for_a_list_of_promises_runs_for_each_of_them(pipeline, promise):
    marker_step(pipeline, "both", "on: {promise: [app, app-v2]}", file="10-both.yaml")
    marker_step(pipeline, "v2-only", "on: {promise: [app-v2]}", file="20-v2.yaml")
    marker_step(pipeline, "other", "on: {promise: [db, cache]}", file="30-other.yaml")
    result = pipeline.run("run", env={"KRATIX_PROMISE_NAME": promise})
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == (["both"] if promise == "app" else ["both", "v2-only"])


def test_when_no_promise_in_the_list_matches_the_reason_lists_them(pipeline):
    marker_step(pipeline, "db-steps", "on: {promise: [db, cache]}", file="10-db.yaml")
    result = pipeline.run("run", env={"KRATIX_PROMISE_NAME": "app"})
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == []
    assert "db-steps: on.promise is [db, cache] but KRATIX_PROMISE_NAME is app" in result.stderr


def test_a_named_step_for_other_promises_runs_with_a_warning_listing_them(pipeline):
    marker_step(pipeline, "named", "on: {promise: [db, cache]}")
    result = pipeline.run("run", "named")
    assert result.returncode == 0, result.stderr
    assert ran(pipeline) == ["named"]
    assert (
        "warning: step named is not meant for this workflow "
        "(on.promise is [db, cache] but KRATIX_PROMISE_NAME is not set)" in result.stderr
    )


def test_plan_shows_the_promise_list(pipeline):
    marker_step(pipeline, "both", "on: {promise: [app, app-v2]}")
    marker_step(pipeline, "one", "on: {promise: app}")
    result = pipeline.run("plan", "--format", "json", env={"KRATIX_PROMISE_NAME": "app"})
    assert result.returncode == 0, result.stderr
    shown = {plan["step"]: plan["on"]["promise"] for plan in json.loads(result.stdout)}
    assert shown == {"both": ["app", "app-v2"], "one": "app"}


@pytest.mark.parametrize(
    ("names", "promise", "matches"),
    [((), None, True), ((), "x", True), (("a",), "a", True), (("a", "b"), "b", True),
     (("a", "b"), "c", False), (("a",), None, False)],
)  # fmt: skip
def test_a_trigger_matches_any_promise_it_names(names, promise, matches):
    assert Trigger(promise=names).matches("resource", "configure", promise) is matches
