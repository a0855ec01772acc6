"""The runner's settings: environment variables, each with one grammar, parsed once.

`Settings.from_environ` reads them all before anything runs; a bad value is an InvalidError
(exit 2) naming the variable, the value and the form expected. Durations have one grammar
everywhere (settings, `--lock-wait`, a step's `timeout:`): `30s`, `1m30s`, `500ms`, `2h`, or a
plain number of seconds (`60`, `1.5`). With units it is the part of Go's `time.ParseDuration`
that Kratix reads `retryAfter` with, and `format_duration` writes that form.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from runner.base.errors import InvalidError, Problem

T = TypeVar("T")

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
# The step schema's duration pattern is the part with units (runner/stepfile/step.schema.json).
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h))+|{_NUMBER}")
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}

DURATION_FORM = "a duration like 30s, 1m30s, 500ms or 2h, or seconds like 60 or 1.5"


def parse_duration(text: str | float) -> float:
    """Seconds: `1m30s` -> 90.0, `500ms` -> 0.5, `60` -> 60.0; a number is seconds already.

    Raises ValueError for anything else (a sign, a space, another unit). Exact: the parts are
    added as integers, so `1h0.001s` is the float nearest to 3600.001.
    """
    if isinstance(text, int | float):
        if not math.isfinite(text):  # YAML's .inf, or 1e999 (which reads as infinity)
            raise ValueError(f"not a duration: {text!r}")
        return _at_most_go(float(text), text)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text!r}")
    parts = _PART.findall(text) if text[-1].isalpha() else [(text, "s")]
    scale = max(len(number.partition(".")[2]) for number, _ in parts)
    total = 0  # in units of 10**-scale milliseconds
    for number, unit in parts:
        whole, _, fraction = number.partition(".")
        total += int(whole + fraction) * 10 ** (scale - len(fraction)) * _UNIT_MS[unit]
    try:
        return _at_most_go(total / (1000 * 10**scale), text)
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


# Go's longest duration (int64 nanoseconds): Kratix reads retryAfter with Go.
MAX_DURATION_SECONDS = 9223372036


def _at_most_go(seconds: float, text: str | float) -> float:
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(
            f"duration too long: {text!r} (at most {MAX_DURATION_SECONDS}s, about 292 years)"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """The Go duration for `seconds`, to the millisecond: `30s`, `1m30s`, `2h`, `500ms`, `1.5s`."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    rest = round(seconds * 1000)
    if rest == 0:
        return "0s"
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if millis and not whole and not text:
        return f"{millis}ms"
    if whole or millis:
        text += f"{whole}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    return text


def parse_bool(text: str) -> bool:
    """true/false, 1/0, yes/no, in any case."""
    value = text.lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _duration_at_least(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = parse_duration(text)
        if value < minimum:
            raise ValueError(f"below {minimum:g}s")
        return value

    return parse


def _whole_seconds(text: str) -> int:
    value = parse_duration(text)
    if value < 1 or value != int(value):
        raise ValueError("not a whole number of seconds, at least 1")
    return int(value)


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValueError("not a whole number, at least 1")
    return int(text)


def _log_format(text: str) -> str:
    value = text.lower()
    if value not in ("text", "json"):
        raise ValueError(f"not a log format: {text!r}")
    return value


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its default, the form it takes (for messages), its parser."""

    variable: str
    default: T
    form: str
    parse: Callable[[str], T]

    def read(self, environ: Mapping[str, str]) -> T:
        """The value in `environ`, else the default (also for an empty value)."""
        raw = environ.get(self.variable, "")
        if not raw.strip():
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError:
            raise InvalidError(self.problem(raw)) from None

    def read_or_default(self, environ: Mapping[str, str]) -> T:
        """The value in `environ` if usable, else the default (for reporting a bad one)."""
        try:
            return self.read(environ)
        except InvalidError:
            return self.default

    def problem(self, raw: str) -> Problem:
        return Problem(
            f"{self.variable}={json.dumps(raw, ensure_ascii=False)} is not valid: expected {self.form}"
        )


LOCK_WAIT = Setting("RUNNER_LOCK_WAIT", 60.0, f"{DURATION_FORM}; 0 or more", _duration_at_least(0))
LEASE_SECONDS = Setting(
    "RUNNER_LEASE_SECONDS",
    60,
    "whole seconds, at least 1, as a duration (60s, 2m) or a number (60)",
    _whole_seconds,
)
KUBE_ATTEMPTS = Setting("RUNNER_KUBE_ATTEMPTS", 6, "a whole number, at least 1", _count)
LOG_FORMAT = Setting("RUNNER_LOG_FORMAT", "text", "text or json", _log_format)
KILL_GRACE = Setting(
    "RUNNER_KILL_GRACE", 10.0, f"{DURATION_FORM}; 0 or more", _duration_at_least(0)
)
BOOLEAN_FORM = "true or false (also 1/0, yes/no; any case)"
DRY_RUN = Setting("KRATIX_DRY_RUN", False, BOOLEAN_FORM, parse_bool)
DEBUG = Setting("RUNNER_DEBUG", False, BOOLEAN_FORM, parse_bool)

SETTINGS: tuple[Setting[Any], ...] = (
    LOCK_WAIT,
    LEASE_SECONDS,
    KUBE_ATTEMPTS,
    LOG_FORMAT,
    KILL_GRACE,
    DRY_RUN,
    DEBUG,
)


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed: what the commands, the engine and the stores are given."""

    lock_wait: float = LOCK_WAIT.default
    lease_seconds: int = LEASE_SECONDS.default
    kube_attempts: int = KUBE_ATTEMPTS.default
    log_format: str = LOG_FORMAT.default
    kill_grace: float = KILL_GRACE.default
    dry_run: bool = DRY_RUN.default
    debug: bool = DEBUG.default

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Every setting from `environ`; one InvalidError lists every bad one."""
        problems: list[Problem] = []

        def read(setting: Setting[T]) -> T:
            try:
                return setting.read(environ)
            except InvalidError as exc:
                problems.extend(exc.problems)
                return setting.default

        settings = cls(
            lock_wait=read(LOCK_WAIT),
            lease_seconds=read(LEASE_SECONDS),
            kube_attempts=read(KUBE_ATTEMPTS),
            log_format=read(LOG_FORMAT),
            kill_grace=read(KILL_GRACE),
            dry_run=read(DRY_RUN),
            debug=read(DEBUG),
        )
        if problems:
            raise InvalidError(*problems)
        return settings


DEFAULTS = Settings()


def argument_type(setting: Setting[T]) -> Callable[[str], T]:
    """An argparse `type=` with the setting's grammar: `--lock-wait 1m` is `RUNNER_LOCK_WAIT=1m`."""

    def parse(text: str) -> T:
        try:
            return setting.parse(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{json.dumps(text, ensure_ascii=False)} is not valid: expected {setting.form}"
            ) from None

    return parse
