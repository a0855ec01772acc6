"""Plain scalars read as go-yaml v2 (sigs.k8s.io/yaml, what Kratix uses) reads them."""

from __future__ import annotations

import pytest

from runner.platform.kratix_yaml import resolve


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0), ("7", 7), ("12", 12), ("100", 100), ("8080", 8080), ("-42", -42),
        ("+3", 3), ("1_000", 1000), ("010", 8), ("0o17", 15), ("0x1F", 31), ("0b101", 5),
        ("yes", True), ("off", False), ("~", None), ("1.5", 1.5), ("1e3", 1000.0),
    ],
)  # fmt: skip
def test_plain_scalars_resolve_as_go_yaml_does(text, value):
    resolved = resolve(text)
    assert resolved == value and type(resolved) is type(value)
