"""Set paths: parsing with offsets, and setting values in documents."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.language.query import QueryError
from runner.language.setpath import SetPathError, format_set_path, parse_set_path, set_path


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        (".a.b", ("a", "b")),
        (".a[0]", ("a", 0)),
        (".a[-1]", ("a", -1)),
        ('.a["k.d"]', ("a", "k.d")),
        (".a['k d']", ("a", "k d")),
        (
            '.metadata.labels."app.kubernetes.io/name"',
            ("metadata", "labels", "app.kubernetes.io/name"),
        ),
        (".spec.my-field", ("spec", "my-field")),
        (".[0].a", (0, "a")),
        (".a.[1]", ("a", 1)),
        (".a[]", ("a", None)),
        (".spec.users[].passwordSecretRef.name", ("spec", "users", None, "passwordSecretRef", "name")),
        (".[][0]", (None, 0)),
    ],
)
def test_parse(text: str, segments: tuple[str | int, ...]) -> None:
    assert parse_set_path(text) == segments


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        (".", "a set path must name a field at offset 1, e.g. .metadata.name", 1),
        (".a // 1", 'unexpected "//" at offset 3; a path here takes no default', 3),
        (".a//1", 'unexpected "//" at offset 2; a path here takes no default', 2),
        (".a b", "unexpected whitespace at offset 2; expected the end of the path", 2),
        (
            "a.b",
            'expected "." but found "a" at offset 0; paths start with "." (e.g. .metadata.name)',
            0,
        ),
        (
            ".a[x]",
            'expected an integer index, a quoted key or "]" after "[" but found "x" at offset 3',
            3,
        ),
        ('.a."', 'unterminated string (missing closing ") at offset 3', 3),
    ],
)
def test_parse_errors_carry_the_offset(text: str, message: str, offset: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_set_path(text)
    assert (caught.value.message, caught.value.offset) == (message, offset)


def test_set_creates_missing_mappings_and_lists() -> None:
    doc: dict[str, Any] = {"metadata": {"name": "old"}, "spec": None}
    set_path(doc, ("metadata", "name"), "new")
    set_path(doc, ("metadata", "labels", "app.kubernetes.io/name"), "x")
    set_path(doc, ("spec", "ports", 0, "port"), 80)
    assert doc == {
        "metadata": {"name": "new", "labels": {"app.kubernetes.io/name": "x"}},
        "spec": {"ports": [{"port": 80}]},
    }


def test_set_replaces_appends_and_counts_from_the_end() -> None:
    doc: dict[str, Any] = {"items": [1, 2]}
    set_path(doc, ("items", 0), "first")
    set_path(doc, ("items", 2), "appended")
    set_path(doc, ("items", -1), "last")
    assert doc == {"items": ["first", 2, "last"]}


def test_set_replaces_a_whole_subtree() -> None:
    doc: dict[str, Any] = {"spec": {"a": {"b": 1}}}
    set_path(doc, ("spec", "a"), [1])
    assert doc == {"spec": {"a": [1]}}


@pytest.mark.parametrize(
    ("doc", "segments", "message"),
    [
        ({"spec": "text"}, ("spec", "a"), "cannot set .spec.a: .spec is a string, not a mapping"),
        ({"spec": [1]}, ("spec", "a"), "cannot set .spec.a: .spec is a list, not a mapping"),
        ({"spec": {}}, ("spec", 0), "cannot set .spec[0]: .spec is a mapping, not a list"),
        (
            {"a": {"b": 3}},
            ("a", "b", "c", "d"),
            "cannot set .a.b.c.d: .a.b is an integer, not a mapping",
        ),
        (
            {"spec": {"items": [1]}},
            ("spec", "items", 2),
            "cannot set .spec.items[2]: .spec.items has 1 item(s), so there is no index 2 "
            "(an index may append only at [1])",
        ),
        (
            {"items": []},
            ("items", -1),
            "cannot set .items[-1]: .items has 0 item(s), so there is no index -1 "
            "(an index may append only at [0])",
        ),
        (
            {"labels": {"a.b": "x"}},
            ("labels", "a.b", "c"),
            'cannot set .labels."a.b".c: .labels."a.b" is a string, not a mapping',
        ),
    ],
)
def test_set_errors_name_the_path_so_far_and_the_type(
    doc: dict[str, Any], segments: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(SetPathError) as caught:
        set_path(doc, segments, "v")
    assert caught.value.message == message


keys = st.text(min_size=1, max_size=6).filter(lambda k: k.strip() == k)
segments = st.lists(keys | st.integers(min_value=0, max_value=3), min_size=1, max_size=5)


@given(segments)
def test_format_and_parse_round_trip(found: list[str | int]) -> None:
    assert parse_set_path(format_set_path(tuple(found))) == tuple(found)
