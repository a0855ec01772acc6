"""The docs stay true: every Step in a ```yaml block validates, and every CLI verb is documented."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from runner.cli import VERBS
from tests.conftest import REPO

DOCS = REPO / "docs"
FENCE = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.M | re.S)


def yaml_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        text = doc.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{doc.name}:{line}", match.group(1)))
    return found


STEP_BLOCKS = [(w, body) for w, body in yaml_blocks() if re.search(r"^kind: Step\s*$", body, re.M)]


def test_the_docs_exist_and_show_steps():
    for name in ("step-format.md", "tutorial.md", "state-locking-secrets.md", "cli.md", "image.md"):
        assert (DOCS / name).is_file(), name
    assert len(STEP_BLOCKS) >= 8


@pytest.mark.parametrize(("where", "body"), STEP_BLOCKS, ids=[w for w, _ in STEP_BLOCKS])
def test_every_step_in_the_docs_validates(where, body, tmp_path):
    # Named like the shipped steps so a `$schema=../schemas/...` line means the same thing.
    path = tmp_path / "steps.d" / "snippet.yaml"
    path.parent.mkdir()
    path.write_text(body)
    result = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(path)], capture_output=True, text=True,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"docs/{where}:\n{result.stderr}"


def test_every_cli_verb_is_in_the_cli_reference():
    help_text = subprocess.run(
        [sys.executable, "-m", "runner", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    verbs = re.findall(r"^    ([a-z]+)\s", help_text, re.M)
    assert set(verbs) == set(VERBS), help_text
    reference = (DOCS / "cli.md").read_text()
    for verb in verbs:
        assert re.search(rf"^## `runner {verb}\b", reference, re.M), f"cli.md: no section {verb}"


def test_every_exit_code_and_environment_variable_of_the_design_is_in_the_cli_reference():
    reference = (DOCS / "cli.md").read_text()
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^\| `{code}` \|", reference, re.M), f"exit code {code}"
    for name in ("RUNNER_STEPS_DIR", "RUNNER_STATE_STORE", "RUNNER_LOG_FORMAT",
                 "KRATIX_WORKFLOW_ACTION", "KRATIX_WORKFLOW_TYPE", "KRATIX_PROMISE_NAME",
                 "KRATIX_DRY_RUN"):
        assert name in reference, name


def test_links_between_docs_point_at_files_that_exist():
    for doc in sorted(DOCS.glob("*.md")):
        text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.M | re.S)
        prose = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
            if target.startswith(("http://", "https://")):
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
