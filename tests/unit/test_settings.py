"""Settings: the one duration grammar, booleans, bounds, and Settings.from_environ."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.base.errors import InvalidError, StoreError
from runner.platform import settings as s
from runner.platform.log import Logger
from runner.platform.settings import Settings, format_duration, parse_duration
from runner.stepfile import model
from runner.stepfile.schema import schema_text


def schema_duration_pattern() -> str:
    return json.loads(schema_text())["$defs"]["duration"]["oneOf"][0]["pattern"]


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0), ("1m", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0),
        ("60", 60.0), ("1.5", 1.5), ("0", 0.0), ("0s", 0.0), ("1h30m", 5400.0),
        ("1.5ms", 0.0015), ("1h0.001s", 3600.001), ("30m1h", 5400.0), ("10m", 600.0),
    ],
)  # fmt: skip
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "1x", "-5", "-5s", "+5", " 5", "5 s", "1.", ".5", "1e3", "inf", "nan", "1m-30s",
     "1M", "10S", "1d", "s", "m30", "٣s", "1_000", "1,5s", "9" * 400 + "h"],
)  # fmt: skip
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (30, "30s"), (90, "1m30s"), (0.5, "500ms"), (7200, "2h"), (1.5, "1.5s"),
        (60.5, "1m0.5s"), (3600.25, "1h0.25s"), (5400, "1h30m"), (0.0004, "0s"), (61, "1m1s"),
    ],
)  # fmt: skip
def test_format_duration_writes_go_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan")])
def test_format_duration_refuses_what_no_duration_is(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_is_the_same_number_of_milliseconds(millis: int) -> None:
    text = format_duration(millis / 1000)
    assert parse_duration(text) == millis / 1000
    # Go's time.ParseDuration takes it (our units are a subset of Go's), and so does the
    # step schema: what we write as retryAfter is a valid timeout too.
    assert re.fullmatch(r"([0-9]+(\.[0-9]+)?(ms|s|m|h))+", text), text


@given(st.text(alphabet="0123456789.mhs", max_size=12))
def test_the_step_schema_and_the_settings_accept_the_same_durations_with_units(
    text: str,
) -> None:
    in_schema = re.search(schema_duration_pattern(), text) is not None
    try:
        parse_duration(text)
        parsed = True
    except ValueError as exc:
        # Past Go's longest duration: the syntax is the schema's; validate says it is too long.
        parsed = "too long" in str(exc)
    with_units = bool(text) and text[-1].isalpha()
    assert in_schema == (parsed and with_units), text


@given(st.from_regex(r"\A([0-9]{1,4}(\.[0-9]{1,3})?(ms|s|m|h)){1,4}\Z"))
def test_parsing_adds_the_parts(text: str) -> None:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9.]+)(ms|s|m|h)", text)
    assert parse_duration(text) == pytest.approx(sum(float(n) * units[u] for n, u in parts))


def test_a_step_timeout_is_parsed_by_the_settings_grammar() -> None:
    assert model.parse_duration is s.parse_duration
    assert model.optional_duration("1m30s") == 90.0
    assert model.optional_duration(5) == 5.0
    assert model.optional_duration(None) is None


# -- settings ------------------------------------------------------------------------------


def test_defaults_without_any_variable() -> None:
    assert Settings.from_environ({}) == Settings(
        lock_wait=60.0, lease_seconds=60, kube_attempts=6, log_format="text", kill_grace=10.0,
        dry_run=False, debug=False,
    )  # fmt: skip


def test_good_forms_of_every_setting() -> None:
    environ = {
        "RUNNER_LOCK_WAIT": "1m",
        "RUNNER_LEASE_SECONDS": "90s",
        "RUNNER_KUBE_ATTEMPTS": "3",
        "RUNNER_LOG_FORMAT": "JSON",
        "RUNNER_KILL_GRACE": "500ms",
        "KRATIX_DRY_RUN": "yes",
        "RUNNER_DEBUG": "1",
    }
    assert Settings.from_environ(environ) == Settings(
        lock_wait=60.0, lease_seconds=90, kube_attempts=3, log_format="json", kill_grace=0.5,
        dry_run=True, debug=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("True", True), ("1", True), ("yes", True), ("YES", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("No", False)],
)  # fmt: skip
def test_booleans(text: str, value: bool) -> None:
    assert s.DRY_RUN.read({"KRATIX_DRY_RUN": text}) is value


def test_an_empty_value_is_the_default() -> None:
    assert Settings.from_environ({"RUNNER_LOCK_WAIT": "", "KRATIX_DRY_RUN": " "}) == Settings()


def test_surrounding_spaces_are_ignored() -> None:
    assert s.LOCK_WAIT.read({"RUNNER_LOCK_WAIT": " 2m "}) == 120.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNNER_LOCK_WAIT", "1x"), ("RUNNER_LOCK_WAIT", "-5"),
        ("RUNNER_LEASE_SECONDS", "1.5"), ("RUNNER_LEASE_SECONDS", "500ms"),
        ("RUNNER_LEASE_SECONDS", "0"), ("RUNNER_LEASE_SECONDS", "x"),
        ("RUNNER_KUBE_ATTEMPTS", "x"), ("RUNNER_KUBE_ATTEMPTS", "0"),
        ("RUNNER_KUBE_ATTEMPTS", "2.5"), ("RUNNER_KUBE_ATTEMPTS", "-1"),
        ("RUNNER_KUBE_ATTEMPTS", "٣"), ("RUNNER_KUBE_ATTEMPTS", "+3"),
        ("RUNNER_LOG_FORMAT", "yaml"), ("RUNNER_KILL_GRACE", "soon"),
        ("RUNNER_KILL_GRACE", "-1s"), ("KRATIX_DRY_RUN", "maybe"), ("KRATIX_DRY_RUN", "on"),
        ("RUNNER_DEBUG", "2"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_variable_the_value_and_the_form(variable: str, value: str) -> None:
    with pytest.raises(InvalidError) as caught:
        Settings.from_environ({variable: value})
    [problem] = caught.value.problems
    assert problem.message.startswith(f'{variable}="{value}" is not valid: expected ')


def test_a_whole_number_of_seconds_from_a_duration() -> None:
    assert s.LEASE_SECONDS.read({"RUNNER_LEASE_SECONDS": "2m"}) == 120
    assert s.LEASE_SECONDS.read({"RUNNER_LEASE_SECONDS": "60"}) == 60
    assert isinstance(s.LEASE_SECONDS.read({"RUNNER_LEASE_SECONDS": "60s"}), int)


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(InvalidError) as caught:
        Settings.from_environ({"RUNNER_LOCK_WAIT": "soon", "RUNNER_KUBE_ATTEMPTS": "many"})
    assert [p.message.split("=")[0] for p in caught.value.problems] == [
        "RUNNER_LOCK_WAIT",
        "RUNNER_KUBE_ATTEMPTS",
    ]


def test_a_value_with_a_newline_stays_on_one_line() -> None:
    with pytest.raises(InvalidError) as caught:
        Settings.from_environ({"RUNNER_LOCK_WAIT": "1\nm"})
    assert "\n" not in caught.value.problems[0].message


def test_the_stores_read_their_settings_with_the_same_grammar() -> None:
    from runner.state.kubeapi import Kube

    with pytest.raises(InvalidError, match="RUNNER_KUBE_ATTEMPTS"):
        Kube.from_environment({"RUNNER_KUBE_ATTEMPTS": "x"})


# -- the lease renewer ---------------------------------------------------------------------


class FailingRenewals:
    """A Kube whose Lease can be created and read, but every renewal raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.renewals = 0
        self.lease: dict[str, Any] | None = None
        self.lock = threading.Lock()

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.lease

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return self.lease

    def replace(self, resource: str, namespace: str, name: str, body: Any) -> dict[str, Any]:
        with self.lock:
            self.renewals += 1
        raise self.error


def wait_until(condition: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize(
    "error",
    [RuntimeError("the renewer tripped"), StoreError("the API refused: 403")],
    ids=["bug", "store-error"],
)
def test_a_lease_not_renewed_for_its_duration_is_lost_and_told_once(error: Exception) -> None:
    from runner.state.lease import LeaseLock

    kube = FailingRenewals(error)
    err = io.StringIO()
    log = Logger("text", stream=err, out=io.StringIO())
    lock = LeaseLock(kube, "default", "app", "me/1", 1, {}, log=log, step="app")
    lock.acquire(0)
    try:
        assert wait_until(lambda: kube.renewals >= 2)  # the renewer survives a failure
        assert wait_until(lambda: lock.lost)
        assert lock.lost_because is not None and "not renewed for" in lock.lost_because
        assert str(error.args[0]) in lock.lost_because
    finally:
        lock.release()
    assert lock.lost
    warnings = [line for line in err.getvalue().splitlines() if "warning" in line]
    assert len(warnings) == 1, err.getvalue()
    assert "lost Lease default/app" in warnings[0] and "[app]" in warnings[0]
