"""Paths a request picks a file by (runner.language.source_paths), the no-follow reader
(runner.base.files.open_below), and base files read one document at a time."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.base.errors import InvalidError
from runner.base.files import LinkRefused, open_below
from runner.base.source import stream_yaml
from runner.language.documents import build, copied_documents, dump
from runner.language.interpolation import TemplateError
from runner.language.source_paths import component_problem, render_source, split_source
from runner.platform.masking import Masker

CONTEXT = {"inputs": {"v": "v2", "empty": "", "n": 3}}


def test_the_fixed_part_is_the_folders_before_the_first_template() -> None:
    assert split_source("../templates/tekton-${{ inputs.v }}.yaml") == (
        "../templates",
        ["tekton-${{ inputs.v }}.yaml"],
    )
    assert split_source("${{ inputs.v }}/a.yaml") == ("", ["${{ inputs.v }}", "a.yaml"])
    assert split_source("plain/a.yaml") == ("plain/a.yaml", [])


def test_a_rendered_path_is_its_folder_and_what_the_request_picked() -> None:
    picked = render_source("../t/x-${{ inputs.v }}-${{ inputs.n }}.yaml", CONTEXT)
    assert (picked.fixed, picked.below, picked.shown) == ("../t", ("x-v2-3.yaml",), "../t/x-v2-3.yaml")


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "/", "a\0b", "../x"])
def test_a_value_that_is_not_one_non_empty_component_is_refused(value: str) -> None:
    with pytest.raises(TemplateError, match="one non-empty path component"):
        render_source("t/${{ inputs.x }}", {"inputs": {"x": value}})


@given(st.text(max_size=12))
def test_whatever_the_value_the_file_stays_in_the_folder(value: str) -> None:
    try:
        picked = render_source("t/${{ inputs.x }}.yaml", {"inputs": {"x": value}})
    except TemplateError:
        return
    assert picked.fixed == "t" and len(picked.below) == 1
    assert "/" not in picked.below[0] and picked.below[0] not in ("", ".", "..")


@pytest.mark.parametrize(
    ("text", "folder", "bad"),
    [
        ("t/${{ inputs.v }}/../x.yaml", False, True),
        ("t/${{ inputs.v }}//x.yaml", False, True),
        ("t/${{ inputs.v }}/./x.yaml", False, True),
        ("t/${{ inputs.v }}/", False, True),
        ("t/${{ inputs.v }}/", True, False),
        ("../t/${{ inputs.v }}/x.yaml", False, False),  # the author's `..` before it is theirs
    ],
)
def test_literal_components_after_a_template(text: str, folder: bool, bad: bool) -> None:
    assert (component_problem(text, folder) is not None) is bad


def test_open_below_follows_no_link_below_its_root(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("token")
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "ok.yaml").write_text("a: 1\n")
    os.symlink(tmp_path / "secret", root / "d" / "link.yaml")
    os.symlink(root / "d", root / "dlink")
    os.mkfifo(root / "fifo")
    fd = open_below(root, ["d", "ok.yaml"])
    assert os.read(fd, 10) == b"a: 1\n"
    os.close(fd)
    for parts, says in ((["d", "link.yaml"], "symbolic link"), (["dlink", "ok.yaml"], "symbolic link"),
                        (["fifo"], "not a regular file"), (["d"], "a folder")):  # fmt: skip
        with pytest.raises(LinkRefused) as caught:
            open_below(root, parts)
        assert says in caught.value.strerror
    with pytest.raises(FileNotFoundError):
        open_below(root, ["d", "missing.yaml"])
    with pytest.raises(ValueError):
        open_below(root, ["..", "secret"])


def test_documents_are_read_one_at_a_time() -> None:
    """The first document is there before the parser reaches the broken second one."""
    documents = stream_yaml(io.BytesIO(b"a: 1\n---\nb: [\n"), "f.yaml")
    assert next(documents) == {"a": 1}
    with pytest.raises(InvalidError, match=r"f\.yaml:4:1: invalid YAML"):
        next(documents)


BASE = [{"kind": "A", "spec": {"users": [{"n": 1}, {"n": 2}]}}, {"kind": "B", "data": {"p": 5}}]


@pytest.mark.parametrize(
    "sets",
    [(), ((".metadata.name", "${{ inputs.v }}"),), ((".spec.users[].x", "${{ inputs.n }}"),)],
)
def test_streamed_documents_are_what_build_makes(sets: tuple[tuple[str, str], ...]) -> None:
    import copy

    built = dump(build(CONTEXT, base=copy.deepcopy(BASE), sets=sets))
    streamed = "".join(copied_documents(copy.deepcopy(BASE), Masker(), CONTEXT, sets))
    assert streamed == built


def test_a_set_that_fails_names_the_document_when_there_are_several() -> None:
    from runner.language.documents import ManifestError

    with pytest.raises(ManifestError, match=r"\(in document 2\)"):
        list(copied_documents([{"a": {}}, {"a": 1}], Masker(), CONTEXT, [(".a.b", 1)]))
    with pytest.raises(ManifestError) as caught:
        list(copied_documents([{"a": 1}], Masker(), CONTEXT, [(".a.b", 1)]))
    assert "in document" not in caught.value.message
