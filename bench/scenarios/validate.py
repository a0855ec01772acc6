"""4: `runner validate` against check-jsonschema; bench/validate.py measures, this runs it and
folds its figures into the table and the goals."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from common import PYTHON, REPO, VENV_BIN, ms, ratio, run_timed
from harness import BENCH, Bench, progress, tail


def validate(b: Bench) -> None:
    """bench/validate.py (someone else's) measures `runner validate` on 1,000 step files against
    check-jsonschema; this only runs it and folds its figures into the table and the goals."""
    script = BENCH / "validate.py"
    count = "100" if b.quick else "1,000"
    b.add(f"4. runner validate on {count} step files vs check-jsonschema (bench/validate.py)")
    if not script.exists():
        b.add(
            "bench/validate.py is not there yet: skipped",
            "-",
            "-",
            "",
            "hook: validate() in bench/scenarios/validate.py",
        )
        b.goal(
            "validate no slower than check-jsonschema",
            None,
            "not measured: bench/validate.py missing",
        )
        return
    progress("validate: running bench/validate.py")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    # Quick mode: 100 files, one run of each tool (validate.py's own --quick still runs 3).
    options = [*(["--files", "100", "--repeat", "1"] if b.quick else []), "--json"]
    while True:
        timed = run_timed(
            [PYTHON, str(script), *options], env, REPO, b.out_dir("validate"), timeout=600
        )
        refused = re.search(r"unrecognized arguments: (.*)", timed.stderr)
        if timed.rc != 2 or not refused or not options:
            break
        # An older or newer validate.py without these options: drop what it refused, try again.
        options = [o for o in options if o not in refused.group(1).split()]
    figures = _validate_figures(timed.stdout)
    if figures is None:  # (it exits 1 when its goal is not met, with its figures: judged below)
        b.add("bench/validate.py: no JSON figures", "-", "-", "", f"exit {timed.rc}; output below")
        b.notes.append("bench/validate.py output:\n" + tail(timed.stdout + timed.stderr, 30))
        b.goal(
            "validate no slower than check-jsonschema",
            None,
            f"bench/validate.py exited {timed.rc} without figures (its output is under notes)",
        )
        return
    runner_s, check_s, files = figures
    b.add(
        f"validate {files} files (median)",
        ms(runner_s),
        ms(check_s),
        ratio(runner_s, check_s),
        "seed column: check-jsonschema",
    )
    b.goal(
        "validate no slower than check-jsonschema",
        runner_s <= check_s,
        f"runner validate {ms(runner_s)}; check-jsonschema {ms(check_s)} ({files} files)",
    )


def _validate_figures(stdout: str) -> tuple[float, float, int] | None:
    """(runner seconds, check-jsonschema seconds, files) from validate.py's JSON line: the last
    line that parses as an object, with any key naming runner and check-jsonschema seconds."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        flat = _flatten(doc)
        runner = _pick(flat, ("runner",), ("check",))
        check = _pick(flat, ("check",), ())
        files = next(
            (int(v) for k, v in flat.items() if k.endswith("files") and isinstance(v, int)), 1000
        )
        if runner is not None and check is not None:
            return runner, check, files
    return None


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}".lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _pick(flat: dict[str, Any], want: tuple[str, ...], avoid: tuple[str, ...]) -> float | None:
    for key, value in flat.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if (
            all(w in key for w in want)
            and not any(a in key for a in avoid)
            and any(u in key for u in ("median", "seconds", "_s", "ms", "time", "wall"))
        ):
            return float(value) / (1000.0 if key.endswith("ms") else 1.0)
    return None
