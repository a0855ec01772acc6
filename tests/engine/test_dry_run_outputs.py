"""A dry run's outputs read only what this run wrote: a file a real run left in the workdir is
not this run's answer (the new user's stale `look.json`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.engine.world import open_session

LOOK = """
workdir: ../work
run: [{ argv: [sh, -c, 'echo "{\\"exists\\": true}" > look.json'], stdout: log.txt }]
outputs: { exists: { file: look.json, query: .exists } }
status: { exists: "${{ outputs.exists }}" }
"""


def _status(tmp: Path) -> str:
    return (tmp / "metadata" / "status.yaml").read_text()


def test_a_dry_run_reads_no_file_a_real_run_left(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    left = tmp_path / "work" / "look.json"
    left.write_text('{"exists": true}\n')
    old = time.time() - 60
    os.utime(left, (old, old))
    session = open_session(tmp_path, {"10-look": LOOK}, KRATIX_DRY_RUN="true")
    session.run()
    assert "exists: null" in _status(tmp_path)


def test_a_dry_run_reads_what_its_own_commands_wrote(tmp_path: Path) -> None:
    body = LOOK + 'dryRun: [[sh, -c, "echo \\"{\\\\\\"exists\\\\\\": false}\\" > look.json"]]\n'
    session = open_session(tmp_path, {"10-look": body}, KRATIX_DRY_RUN="true")
    session.run()
    assert "exists: false" in _status(tmp_path)
