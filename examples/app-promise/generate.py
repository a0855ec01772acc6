"""Write promise.yaml's workflows from the steps the App's pipeline image holds.

The Pipelines' containers, their Secret env entries and their rbac.permissions all follow from
the step files (`runner pipeline`), so they are generated rather than kept in step by hand: edit
a step, run `python examples/app-promise/generate.py`, commit both. `--check` only says whether
promise.yaml is up to date (exit 1 if not), for tests and CI. Everything above `workflows:` is
the Promise's own text and is kept as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROMISE = HERE / "promise.yaml"
IMAGE = "kratix-workshop/app-pipeline-image:v2.0.0"
WORKFLOWS = "  workflows:\n"  # where the generated part starts
PIPELINES = {"configure": "instance-configure", "delete": "instance-delete"}


def pipeline(steps_dir: Path, action: str, name: str) -> dict[str, Any]:
    """`runner pipeline` for the steps that a resource `action` of the app Promise runs."""
    workflow = {"KRATIX_WORKFLOW_TYPE": "resource", "KRATIX_WORKFLOW_ACTION": action}
    options = ["--steps-dir", str(steps_dir), "--image", IMAGE, "--name", name]
    result = subprocess.run(
        [sys.executable, "-m", "runner", "pipeline", *options],
        env={**os.environ, **workflow, "KRATIX_PROMISE_NAME": "app"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 or result.stderr:
        sys.exit(f"runner pipeline ({action}) said:\n{result.stderr}")
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def generated() -> str:
    """promise.yaml as it should be: its own header, then the generated workflows."""
    header = PROMISE.read_text().split(WORKFLOWS)[0] + WORKFLOWS
    with tempfile.TemporaryDirectory() as tmp:
        steps = Path(tmp) / "steps.d"  # the image's /steps.d: the shipped steps plus the App's
        shutil.copytree(REPO / "steps.d", steps)
        shutil.copytree(HERE / "steps.d", steps, dirs_exist_ok=True)
        resource = {action: [pipeline(steps, action, name)] for action, name in PIPELINES.items()}
    body = yaml.safe_dump({"resource": resource}, sort_keys=False, width=100)
    return header + textwrap.indent(body, "    ")


def main(argv: list[str]) -> int:
    text = generated()
    if argv == ["--check"]:
        if PROMISE.read_text() != text:
            print(f"{PROMISE}: out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PROMISE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
