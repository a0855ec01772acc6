"""Randomly mutated step files never crash the validator.

The seeds are the shipped steps and the fixture steps. Mutations work on the text (insert
YAML punctuation, templates, quotes, Unicode and control characters; delete, truncate,
duplicate and swap lines), on the structure (delete keys, replace values with values of other
types, then dump it again), or replace the file with random bytes. Whatever comes out, the
validator must answer with problems (exit 2) or none (exit 0): never an exception, never an
"internal error", and every location it gives must be inside the file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.base.source import parse_yaml
from runner.cli import main
from runner.stepfile.loader import load_steps

REPO = Path(__file__).resolve().parent.parent
SEED_FILES = [
    *sorted((REPO / "steps.d").glob("*.yaml")),
    *sorted((REPO / "tests" / "data" / "validate" / "valid").glob("*.y*ml")),
]
SEED_TEXTS = [p.read_text() for p in SEED_FILES]
SEED_VALUES = [doc.value for text in SEED_TEXTS for doc in parse_yaml(text, "seed")[0]]

# What YAML counts as line breaks (libyaml's line numbers count these).
YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

# VALIDATE_FUZZ_EXAMPLES=5000 for a longer hunt than the default quick run.
EXAMPLES = int(os.environ.get("VALIDATE_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)

# Fragments that mean something to YAML, to templates, to queries or to the validator.
FRAGMENTS = [
    "${{", "}}", "${{ inputs.", "${{ secrets.X }}", "${{ kratix.object.name }}", "'", '"', ":",
    ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!Ref ", "\t", "\n", "  ",
    "    ", "# ", "---\n", "...\n", "<<: *a", "\x00", "\x01", "é", "\u2028", "\ufeff", "? ",
    "|\n", ">-\n", "~", "null", "yes", "on", "0x1F", "1e999", "9" * 50, ".metadata..name",
    "query: ", "jmespath: ", "lenght(", "\\", "%", "@", "`", "\r\n", "\U0001f600",
]  # fmt: skip
INSERTS = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20))


@st.composite
def text_mutants(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["insert", "delete", "truncate", "replace", "lines"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(INSERTS) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "truncate":
            text = text[:at]
        elif op == "replace":
            end = at + draw(st.integers(1, 10))
            text = text[:at] + draw(INSERTS) + text[end:]
        else:
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                action = draw(st.sampled_from(["swap", "duplicate", "drop", "dedent"]))
                if action == "swap":
                    lines[i], lines[j] = lines[j], lines[i]
                elif action == "duplicate":
                    lines.insert(j, lines[i])
                elif action == "drop":
                    del lines[i]
                else:
                    lines[i] = lines[i].lstrip(" ")
                text = "".join(lines)
    return text


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["${{ inputs.name }}", "${{ secrets.MINIO_USER }}", "${{ nope }}",
                     ".a..b", "[", "configure", "delet", "10x", "Bad_Name", "kratix"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=10,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            found += _paths(sub, (*path, i))
    return found


@st.composite
def structural_mutants(draw: st.DrawFn) -> str:
    value = copy.deepcopy(draw(st.sampled_from(SEED_VALUES)))
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(_paths(value)))
        if not path:
            value = draw(VALUES)
            continue
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["delete", "replace", "rename"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(VALUES)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = parent.pop(path[-1])
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutants")


def _check_file(path: Path, data: bytes) -> None:
    """Validate one file in-process, through the loader and through the CLI."""
    path.write_bytes(data)
    result = load_steps([path])
    text = data.decode("utf-8", "replace")
    lines = max(text.count("\n"), len(YAML_BREAK.findall(text))) + 1
    for problem in result.problems:
        assert "internal error" not in problem.message, problem.format()
        assert problem.file, problem
        problem.format()
        # A problem may be located in a StepTemplate the step uses (a built-in one's file).
        if problem.line is not None and Path(problem.file).name == path.name:
            assert 1 <= problem.line <= lines, problem.format()
            assert problem.col is not None and problem.col >= 1, problem.format()
    if not result.problems:
        assert result.steps, "a valid file holds at least one step"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    assert code == (2 if result.problems else 0), err.getvalue()
    assert "Traceback" not in err.getvalue()


@SETTINGS
@given(text=text_mutants())
def test_text_mutations_never_crash(folder: Path, text: str) -> None:
    _check_file(folder / "step.yaml", text.encode("utf-8", "surrogatepass"))


@pytest.mark.slow
@SETTINGS
@given(text=structural_mutants())
def test_structural_mutations_never_crash(folder: Path, text: str) -> None:
    _check_file(folder / "step.yaml", text.encode("utf-8", "surrogatepass"))


@settings(SETTINGS, max_examples=max(EXAMPLES // 2, 1))
@given(data=st.one_of(st.binary(max_size=300), st.sampled_from(SEED_TEXTS).map(str.encode).flatmap(
    lambda seed: st.tuples(st.integers(0, len(seed)), st.binary(min_size=1, max_size=8)).map(
        lambda cut: seed[: cut[0]] + cut[1] + seed[cut[0] :]))))
def test_random_bytes_never_crash(folder: Path, data: bytes) -> None:
    _check_file(folder / "step.yaml", data)


def test_the_seeds_are_valid(folder: Path) -> None:
    for path in SEED_FILES:
        assert not load_steps([path]).problems, path
