"""Manifest entries: base files, building, dumping, output paths and secret detection."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.base.errors import InvalidError
from runner.base.source import parse_yaml
from runner.language.documents import ManifestError, build, dump, load_base, output_path, secret_in
from runner.platform import kratix_yaml
from runner.platform.masking import Masker

CONTEXT: dict[str, Any] = {
    "inputs": {"name": "todo", "size": "large"},
    "values": {"replicas": 3, "labels": {"tier": "gold"}},
}


def read_back(text: str) -> list[Any]:
    documents, problems = parse_yaml(text, "out.yaml", scalars=kratix_yaml.GO_YAML)
    assert not problems
    return [document.value for document in documents]


def test_load_base_reads_every_document_with_go_yaml_scalars(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("kind: A\nenabled: yes\n---\nkind: B\n---\n")
    assert load_base(base) == [{"kind": "A", "enabled": True}, {"kind": "B"}]


def test_load_base_errors_are_located(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("kind: A\nspec:\n  a: 1\n   b: 2\n")
    with pytest.raises(InvalidError) as caught:
        load_base(base, "templates/base.yaml")
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == ("templates/base.yaml", 4)
    assert problem.message.startswith("invalid YAML")


def test_load_base_refuses_an_empty_or_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidError, match="the base file has no documents"):
        load_base(empty)
    with pytest.raises(InvalidError, match="cannot read file"):
        load_base(tmp_path / "missing.yaml")


def test_build_documents_renders_typed() -> None:
    document = {
        "apiVersion": "apps/v1",
        "metadata": {"name": "${{ inputs.name }}-app", "labels": "${{ values.labels }}"},
        "spec": {"replicas": "${{ values.replicas }}"},
    }
    assert build(CONTEXT, documents=[document]) == [
        {
            "apiVersion": "apps/v1",
            "metadata": {"name": "todo-app", "labels": {"tier": "gold"}},
            "spec": {"replicas": 3},
        }
    ]


def test_build_documents_keeps_their_order() -> None:
    documents = [{"kind": "A", "n": "${{ inputs.name }}"}, {"kind": "B"}]
    assert build(CONTEXT, documents=documents) == [{"kind": "A", "n": "todo"}, {"kind": "B"}]


def test_build_from_a_base_applies_sets_in_order_to_every_document() -> None:
    base = [{"kind": "A", "metadata": {"name": "x"}}, {"kind": "B"}]
    sets = {
        ".metadata.name": "${{ inputs.name }}",
        ".metadata.labels": "${{ values.labels }}",
        ".metadata.labels.tier": "silver",
        ".spec.replicas": "${{ values.replicas }}",
    }
    built = build(CONTEXT, base=base, sets=sets.items())
    expected_metadata = {"name": "todo", "labels": {"tier": "silver"}}
    assert built == [
        {"kind": "A", "metadata": expected_metadata, "spec": {"replicas": 3}},
        {"kind": "B", "metadata": expected_metadata, "spec": {"replicas": 3}},
    ]
    assert built[0]["metadata"] is not built[1]["metadata"]
    assert base == [{"kind": "A", "metadata": {"name": "x"}}, {"kind": "B"}]  # not changed
    assert CONTEXT["values"]["labels"] == {"tier": "gold"}


@pytest.mark.parametrize(
    ("entry", "message", "path"),
    [
        ({}, "a manifest needs exactly one of document, documents and from", ()),
        (
            {"base": [{}], "documents": []},
            "a manifest needs exactly one of document, documents and from",
            (),
        ),
        ({"documents": [{}], "sets": [(".a", 1)]}, "set needs a base document (from)", ("set",)),
        (
            {"documents": [{}, "text"]},
            "document 2 is a string, not a mapping (a Kubernetes object)",
            ("documents", 1),
        ),
        (
            {"base": [[1]]},
            "document 1 is a list, not a mapping (a Kubernetes object)",
            ("from",),
        ),
        (
            {"documents": [{"metadata": {"name": "${{ inputs.nmae }}"}}]},
            "unknown reference ${{ inputs.nmae }} at offset 0: inputs has no 'nmae'; "
            "did you mean inputs.name?",
            ("documents", 0, "metadata", "name"),
        ),
        (
            {"base": [{"a": {"b": 1}}], "sets": [(".a[].c", 1)]},
            "cannot set .a[].c: .a is a mapping, not a list",
            ("set", ".a[].c"),
        ),
        (
            {"base": [{"a": "x"}, {"a": 1}], "sets": [(".a.b", 1)]},
            "cannot set .a.b: .a is a string, not a mapping (in document 1)",
            ("set", ".a.b"),
        ),
        (
            {"base": [{}], "sets": [(".a", "${{ values.nope }}")]},
            "unknown reference ${{ values.nope }} at offset 0: values has no 'nope' "
            "(known: labels, replicas)",
            ("set", ".a"),
        ),
    ],
)
def test_build_errors_name_the_place_in_the_entry(
    entry: dict[str, Any], message: str, path: tuple[str | int, ...]
) -> None:
    with pytest.raises(ManifestError) as caught:
        build(CONTEXT, **entry)
    assert (caught.value.message, caught.value.path) == (message, path)


def test_dump_writes_documents_kratix_reads_back() -> None:
    documents = [{"a": "yes", "b": "0x1", "c": None, "d": "two\nlines"}, {"e": [1, "1e3"]}]
    text = dump(documents)
    assert text.count("---\n") == 1
    assert read_back(text) == documents


def test_output_path_stays_inside_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "output"
    (out / "redis").mkdir(parents=True)
    assert output_path(out, "redis/instance.yaml") == (out / "redis" / "instance.yaml").resolve()
    assert output_path(out, "new/dir/x.yaml") == (out / "new" / "dir" / "x.yaml").resolve()


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("", "a manifest path must be a non-empty file name"),
        (
            "/etc/passwd",
            "manifest path '/etc/passwd' is absolute; give it relative to the output folder",
        ),
        (
            "../x.yaml",
            "manifest path '../x.yaml' contains '..'; it must stay inside the output folder",
        ),
        (
            "a/../../x.yaml",
            "manifest path 'a/../../x.yaml' contains '..'; it must stay inside the output folder",
        ),
        (".", "manifest path '.' names a folder, not a file"),
        ("redis/", "manifest path 'redis/' names a folder, not a file"),
        ("redis", "manifest path 'redis' names a folder, not a file"),
        (
            "escape/x.yaml",
            "manifest path 'escape/x.yaml' leads outside the output folder through a symbolic link",
        ),
        (
            "link.yaml",
            "manifest path 'link.yaml' leads outside the output folder through a symbolic link",
        ),
    ],
)
def test_output_path_refusals(tmp_path: Path, relative: str, message: str) -> None:
    out = tmp_path / "output"
    (out / "redis").mkdir(parents=True)
    (out / "escape").symlink_to(tmp_path)
    (out / "link.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with pytest.raises(ManifestError) as caught:
        output_path(out, relative)
    assert (caught.value.message, caught.value.path) == (message, ("path",))


def test_output_path_allows_a_link_that_stays_inside(tmp_path: Path) -> None:
    out = tmp_path / "output"
    (out / "real").mkdir(parents=True)
    (out / "alias").symlink_to(out / "real")
    assert output_path(out, "alias/x.yaml") == (out / "real" / "x.yaml").resolve()


SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"spec": {"env": [{"name": "A", "value": "x"}, {"value": SECRET}]}}, "spec.env[1].value"),
        ({"data": {"password": base64.b64encode(SECRET.encode()).decode()}}, "data.password"),
        ({"url": f"https://u:{SECRET}@host/"}, "url"),
        ({"config": f"a: 1\npassword: {SECRET}\n"}, "config"),
        ({"labels": {SECRET: "v"}}, f"labels.{SECRET}"),
        ([{"a": 1}, {"b": ["ok", SECRET]}], "[1].b[1]"),
        ({"spec": {"ok": "nothing here", "n": 3, "flag": True}}, None),
    ],
)
def test_secret_in_finds_the_first_secret_in_any_form(data: object, path: str | None) -> None:
    assert secret_in(data, Masker([SECRET])) == path


def test_secret_in_finds_a_secret_number() -> None:
    assert secret_in({"pin": 48151623}, Masker(["48151623"])) == "pin"


def test_secret_in_with_no_secrets() -> None:
    assert secret_in({"a": "anything"}, Masker()) is None


# Request values full of what could break YAML written as text.
# fmt: off
TRICKY_WORDS = [
    "yes", "no", "on", "0x1", "1e3", "null", "~", "", "---", "...", "a: b", "# c", "- x", "'",
    '"', "!tag", "&a", "*a", "[1]", "{a: 1}", "2024-01-01", "1_000", ".inf", "0o7", " lead",
    "trail ", "a\nb", "a\n", "\n", "line\n---\nkind: Secret", "é☃\U0001f600", "\t", "%x", "@x",
    "`x", "|", ">", "=", "<<", "\u2028", "a\r\nb", "\x85",
]
# fmt: on
tricky = st.one_of(
    st.sampled_from(TRICKY_WORDS),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.text(st.sampled_from(list("-:#'\"\n\t {}[],&*!|>%@`?yesno01x.~")), max_size=12),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=tricky, key=tricky.filter(lambda k: "${{" not in k))
def test_request_strings_load_back_as_the_same_scalar(value: str, key: str) -> None:
    context = {"inputs": {"v": value, "k": key}}
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "${{ inputs.v }}", "labels": {"${{ inputs.k }}": "x"}},
        "data": {"mixed": "a-${{ inputs.v }}-b", key: "${{ inputs.v }}"},
    }
    text = dump(build(context, documents=[document]))
    documents = read_back(text)
    assert len(documents) == 1
    loaded = documents[0]
    assert list(loaded) == ["apiVersion", "kind", "metadata", "data"]
    assert loaded["metadata"] == {"name": value, "labels": {key: "x"}}
    assert loaded["data"] == {"mixed": f"a-{value}-b", key: value}
