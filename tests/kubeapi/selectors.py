"""Label and field selectors for list and watch, with the API server's syntax."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_TERM = re.compile(
    r"""\s*(?:
        (?P<not>!)\s*(?P<nkey>[^\s,=!()<>]+)
      | (?P<skey>[^\s,=!()<>]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<key>[^\s,=!()<>]+)\s*(?:(?P<op>==|=|!=|>|<)\s*(?P<value>[^\s,=!()<>]*))?
    )\s*(?:,|$)""",
    re.VERBOSE,
)


def _requirement(m: re.Match[str]) -> Matcher:
    if m.group("not"):
        key = m.group("nkey")
        return lambda labels: key not in labels
    if m.group("setop"):
        key, op = m.group("skey"), m.group("setop")
        values = {v.strip() for v in m.group("values").split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    key, op, value = m.group("key"), m.group("op"), m.group("value") or ""
    if op is None:
        return lambda labels: key in labels
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if not value.lstrip("-").isdigit():
        raise bad_request(
            "unable to parse requirement: for 'Gt', 'Lt' operators, "
            f"the value must be an integer: {value}"
        )
    number = int(value)

    def compare(labels: dict[str, Any]) -> bool:
        have = labels.get(key)
        if have is None or not have.lstrip("-").isdigit():
            return False
        return int(have) > number if op == ">" else int(have) < number

    return compare


def label_matcher(selector: str | None) -> Matcher:
    """A predicate over an object's labels; '' or None matches everything."""
    if not selector or not selector.strip():
        return lambda obj: True
    requirements: list[Matcher] = []
    pos = 0
    while pos < len(selector):
        m = _TERM.match(selector, pos)
        if not m or m.end() == pos:
            raise bad_request(
                f"unable to parse requirement: found '{selector[pos:]}', expected: identifier"
            )
        requirements.append(_requirement(m))
        pos = m.end()

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r(labels) for r in requirements)

    return matches


def _field_value(obj: dict[str, Any], name: str) -> str:
    node: Any = obj
    for part in name.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None else str(node)


def field_matcher(selector: str | None, supported: tuple[str, ...]) -> Matcher:
    """A predicate for fieldSelector terms (=, ==, !=) over the fields this resource indexes."""
    if not selector or not selector.strip():
        return lambda obj: True
    terms = []
    for term in selector.split(","):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(\S*)\s*", term)
        if not m:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        key, op, value = m.groups()
        if key not in supported:
            allowed = ", ".join(f'"{s}"' for s in supported)
            raise bad_request(f'"{key}" is not a known field selector: only {allowed}')
        terms.append((key, op != "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, key) == value) == equal for key, equal, value in terms)

    return matches
