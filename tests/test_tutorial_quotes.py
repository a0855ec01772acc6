"""The tutorial quotes the shipped step files exactly: each quoted block is marked with the file
it comes from, and is that whole file (`<!-- file: PATH -->`) or a run of its lines
(`<!-- quote: PATH -->`). A step-like block that quotes nothing says so (`<!-- draft -->`)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

TUTORIAL = REPO / "docs" / "tutorial.md"
MARKED = re.compile(
    r"<!-- (?:(?P<how>file|quote): (?P<path>\S+)|(?P<draft>draft)) -->\n+```ya?ml\n(?P<body>.*?)^```",
    re.M | re.S,
)
BLOCK = re.compile(r"^```ya?ml\n(?P<body>.*?)^```", re.M | re.S)


def marked_blocks() -> list[tuple[str, str, str]]:
    """(how, path, body) of each marked block; how is file, quote or draft."""
    text = TUTORIAL.read_text()
    return [(m["how"] or "draft", m["path"] or "", m["body"]) for m in MARKED.finditer(text)]


QUOTES = [(how, path, body) for how, path, body in marked_blocks() if how != "draft"]


def step_like(body: str) -> bool:
    """A step file, or a fragment of one's spec (every line indented under `spec:`)."""
    lines = [line for line in body.splitlines() if line.strip()]
    return "\nkind: Step\n" in f"\n{body}" or all(line.startswith("  ") for line in lines)


def test_every_step_like_block_of_the_tutorial_is_marked():
    text = TUTORIAL.read_text()
    marked = {m.start("body") for m in MARKED.finditer(text)}
    unmarked = [
        text.count("\n", 0, m.start()) + 1
        for m in BLOCK.finditer(text)
        if step_like(m["body"]) and m.start("body") not in marked
    ]
    assert not unmarked, f"tutorial.md lines {unmarked}: mark each block quote:, file: or draft"


def test_the_tutorial_shows_each_shipped_step_file_whole():
    whole = {path for how, path, _ in QUOTES if how == "file"}
    shipped = {f"steps.d/{p.name}" for p in (REPO / "steps.d").glob("*.yaml")}
    assert shipped <= whole, f"not shown whole: {sorted(shipped - whole)}"


@pytest.mark.parametrize(("how", "path", "body"), QUOTES, ids=[f"{h}:{p}" for h, p, _ in QUOTES])
def test_a_quoted_block_is_what_the_shipped_file_holds(how, path, body):
    shipped = (REPO / path).read_text()
    if how == "file":
        assert body == shipped, f"docs/tutorial.md shows {path} other than it is"
        return
    lines, quoted = shipped.splitlines(), body.splitlines()
    runs = (lines[i : i + len(quoted)] for i in range(len(lines) - len(quoted) + 1))
    assert quoted in runs, f"docs/tutorial.md quotes lines that are not in {path}:\n{body}"
