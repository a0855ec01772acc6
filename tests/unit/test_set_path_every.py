"""`[]` in set paths: the rest of the path is set in every element of a list, and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runner.language.documents import build, dump
from runner.language.setpath import SetPathError, format_set_path, parse_set_path, set_path


def _set(doc: Any, path: str, value: object) -> Any:
    set_path(doc, parse_set_path(path), value)
    return doc


def test_every_element_gets_the_field_and_keeps_its_own() -> None:
    doc = {"spec": {"users": [{"name": "a"}, {"name": "b", "passwordSecretRef": {"key": "k"}}]}}
    _set(doc, ".spec.users[].passwordSecretRef.name", "s")
    assert doc["spec"]["users"] == [
        {"name": "a", "passwordSecretRef": {"name": "s"}},
        {"name": "b", "passwordSecretRef": {"key": "k", "name": "s"}},
    ]


@pytest.mark.parametrize(
    "doc",
    [{}, {"spec": None}, {"spec": {}}, {"spec": {"users": None}}, {"spec": {"users": []}}],
)
def test_an_empty_or_missing_list_sets_and_creates_nothing(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    assert _set(doc, ".spec.users[].passwordSecretRef.name", "s") == before


def test_nested_every_skips_elements_without_the_inner_list() -> None:
    doc = {"a": [{"b": [{}, {"c": 0}]}, {}, {"b": []}, None]}
    _set(doc, ".a[].b[].c", 1)
    assert doc == {"a": [{"b": [{"c": 1}, {"c": 1}]}, {}, {"b": []}, None]}


def test_every_as_the_last_segment_replaces_each_element_with_its_own_copy() -> None:
    doc: dict[str, Any] = {"a": [1, 2]}
    _set(doc, ".a[]", {"k": "v"})
    assert doc == {"a": [{"k": "v"}, {"k": "v"}]}
    assert doc["a"][0] is not doc["a"][1]  # else YAML would write an anchor and an alias


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"a": {"b": 1}}, ".a[].c", "cannot set .a[].c: .a is a mapping, not a list"),
        ({"a": ["x"]}, ".a[].c", "cannot set .a[].c: .a[] is a string, not a mapping"),
        ({"a": [{"b": 1}]}, ".a[].b[]", "cannot set .a[].b[]: .a[].b is an integer, not a list"),
    ],
)
def test_every_on_something_else_than_a_list_is_an_error(
    doc: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(SetPathError) as caught:
        _set(doc, path, 1)
    assert caught.value.message == message


def test_every_formats_back_as_written() -> None:
    for text in (".spec.users[].name", ".a[][0]", ".[].a"):
        assert format_set_path(parse_set_path(text)) == text


scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
refs = st.none() | st.dictionaries(st.sampled_from(["name", "key"]), scalars, max_size=2)
elements = st.builds(
    lambda fields, ref: {**fields, **({} if ref is ... else {"ref": ref})},
    st.dictionaries(st.sampled_from(["name", "role"]), scalars, max_size=2),
    st.just(...) | refs,
)
values = scalars | st.dictionaries(st.text(max_size=3), scalars, max_size=2)


@given(st.lists(elements, max_size=6), values)
def test_every_element_gets_the_value_and_nothing_else_changes(
    users: list[dict[str, Any]], value: object
) -> None:
    doc = {"kind": "X", "spec": {"users": copy.deepcopy(users), "other": [1]}}
    _set(doc, ".spec.users[].ref.name", value)
    assert doc["kind"] == "X" and doc["spec"]["other"] == [1]
    assert set(doc["spec"]) == {"users", "other"}
    assert len(doc["spec"]["users"]) == len(users)
    for before, after in zip(users, doc["spec"]["users"], strict=True):
        assert after["ref"] == {
            **(before["ref"] if isinstance(before.get("ref"), dict) else {}),
            "name": value,
        }
        assert {k: v for k, v in after.items() if k != "ref"} == {
            k: v for k, v in before.items() if k != "ref"
        }


@given(st.lists(elements, max_size=5), st.text(max_size=40))
def test_a_request_value_set_in_every_element_adds_no_keys_or_documents(
    users: list[dict[str, Any]], value: str
) -> None:
    base = [{"kind": "MongoDBCommunity", "spec": {"users": users}}, {"kind": "Other"}]
    built = build(
        {"inputs": {"v": value}},
        base=copy.deepcopy(base),
        sets=[(".spec.users[].ref.name", "${{ inputs.v }}")],
    )
    read = [d for d in yaml.safe_load_all(dump(built)) if d is not None]
    assert len(read) == 2 and read[1] == {"kind": "Other"}
    assert [u["ref"]["name"] for u in read[0]["spec"]["users"]] == [value] * len(users)
    assert [set(u) - {"ref"} for u in read[0]["spec"]["users"]] == [set(u) - {"ref"} for u in users]
