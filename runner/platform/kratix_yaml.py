"""YAML as Kratix reads it, for the files of /kratix/metadata that Kratix itself parses.

Kratix reads `status.yaml` and `workflow-control.yaml` with sigs.k8s.io/yaml, which resolves
plain scalars as go-yaml v2 does: YAML 1.1 booleans (`yes`, `on`, `y`, ...), no sexagesimal
numbers, and keys turned into strings on the way to JSON (`on:` becomes "true"). Step files are
YAML 1.2 (runner.base.source); these files are not. So an earlier container's `enabled: yes` is
read as Kratix reads it (true) and written back as `true`, and a string of ours that go-yaml
would misread (`"yes"`, `"1e3"`) is quoted. The files are parsed by the same bounded builder as
step files (no recursion, alias and size limits), with these scalar rules.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from runner.base.source import Scalars

_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# go-yaml v2's resolve table (resolve.go).
_BOOLS = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"], False),
}  # fmt: skip
_NULLS = {"", "~", "null", "Null", "NULL"}
_SPECIAL_FLOATS = {
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}  # fmt: skip
# strconv.ParseInt(s, 0, 64) after underscores are dropped, and go-yaml's float syntax.
_INT = re.compile(r"[-+]?(?:0[bB][01]+|0[oO]?[0-7]+|0[xX][0-9a-fA-F]+|[1-9][0-9]*|0)")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?"
)


class GoTimestamp(str):
    """A plain scalar go-yaml reads as a timestamp: kept as written, and written back plain."""


def resolve(text: str) -> Any:
    """A plain scalar's value as go-yaml v2 gives it."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text[0].isalpha():  # not a number or timestamp (they start with a digit, sign or "."):
        return text  # most scalars of a large base file end here
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    plain = text.replace("_", "")
    if _INT.fullmatch(plain):
        sign = -1 if plain[0] == "-" else 1
        digits = plain.lstrip("+-")
        base = 10  # Go's ParseInt(text, 0): 0b, 0o, 0x prefixes; a leading 0 is octal
        if len(digits) > 1 and digits[0] == "0":
            base = {"b": 2, "o": 8, "x": 16}.get(digits[1].lower(), 8)
            digits = digits[2:] if digits[1].lower() in ("b", "o", "x") else digits
        try:
            return sign * int(digits, base)
        except ValueError:  # more digits than Python converts: go-yaml makes it a float too
            return float(plain)
    if _FLOAT.fullmatch(plain):
        return float(plain)
    if _TIMESTAMP.fullmatch(text):
        return GoTimestamp(text)
    return text


def key(text: str) -> str:
    """A plain mapping key as sigs.k8s.io/yaml turns it into a JSON key."""
    value = resolve(text)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if isinstance(value, int) else text


GO_YAML = Scalars(resolve, key)


class _Dumper(_DUMPER):  # type: ignore[misc]
    """Quotes every string go-yaml would read as something else."""

    def represent_str(self, data: str) -> Any:
        style = "'" if type(resolve(data)) is not str else None
        if "\n" in data:
            style = "|" if not data.endswith((" ", "\t")) else '"'
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    def represent_go_timestamp(self, data: GoTimestamp) -> Any:
        # Tagged as PyYAML's timestamp so that the emitter leaves it plain, as it was written.
        return self.represent_scalar("tag:yaml.org,2002:timestamp", str(data))


_Dumper.add_representer(str, _Dumper.represent_str)
_Dumper.add_representer(GoTimestamp, _Dumper.represent_go_timestamp)


def dump(value: Any) -> str:
    """`value` as YAML that Kratix reads back as the same values."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
