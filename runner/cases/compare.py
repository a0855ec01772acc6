"""Comparing the trees a run produced with the trees a case expects, and `--update`.

YAML and JSON files are compared as data, so key order and formatting don't matter; a changed
file is shown as a unified diff of both sides normalised (sorted keys, block style).

Parsing decodes escapes: a secret a step wrote as `Tr0ub4dor\u00263` in JSON comes out of the
parser as `Tr0ub4dor&3`. So what is shown (diffs, previews) is masked again after normalising,
besides the masking of the files as read.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from runner.base.source import parse_yaml
from runner.cases.ignore import FieldPath, remove
from runner.platform.masking import Masker

# The metadata folder's runner/: what `runner run` records for later containers (step
# outputs). Compared only when a case expects it, so cases that don't care keep passing.
RUNNER_RECORDS = "runner"
_PREVIEW_LINES = 20  # of a file produced but not expected
_HEADLINES = {
    "changed": "differs",
    "missing": "expected, but not produced",
    "unexpected": "produced, but not expected",
}


@dataclass
class Difference:
    tree: str  # output | metadata
    file: str  # app/deployment.yaml, relative to the tree
    kind: str  # changed | missing | unexpected
    diff: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.tree}/{self.file}"

    def headline(self) -> str:
        return f"{self.path}: {_HEADLINES[self.kind]}"


def snapshot(root: Path, masker: Masker | None = None) -> dict[str, bytes]:
    """relative path ("app/deployment.yaml") -> content (masked), for every file under root."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): _mask(path.read_bytes(), masker, path.suffix)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def without_runner_records(files: dict[str, bytes]) -> dict[str, bytes]:
    """A metadata snapshot without the runner/ folder."""
    return {f: data for f, data in files.items() if not f.startswith(f"{RUNNER_RECORDS}/")}


def _mask(data: bytes, masker: Masker | None, suffix: str = "") -> bytes:
    """The file masked as text; a YAML or JSON file whose values still hold a secret once read
    (a long string folded over lines, escapes the text form hides) is written again from its
    masked values, so what `--update` writes never holds one."""
    if not masker:
        return data
    masked = masker.mask(data.decode("utf-8", "surrogateescape"))
    if suffix in (".yaml", ".yml", ".json"):
        from runner.base.source import parse_yaml
        from runner.language.documents import dump, secret_in

        docs, problems = parse_yaml(masked, "", located=False)
        if problems:
            # Masking can break the syntax (`password: ***` reads as an alias): mask the
            # values instead, so the file is still compared as data, `ignore:` included.
            docs, problems = parse_yaml(data.decode("utf-8", "surrogateescape"), "", located=False)
        values = [doc.value for doc in docs]
        if not problems and secret_in(values, masker) is not None:
            safe = masker.mask_values(values)
            if suffix == ".json" and len(safe) == 1:
                masked = json.dumps(safe[0], indent=2) + "\n"
            else:
                masked = dump(safe)
    return masked.encode("utf-8", "surrogateescape")


def compare_trees(
    tree: str,
    expected: dict[str, bytes],
    actual: dict[str, bytes],
    ignore: Mapping[str, tuple[FieldPath, ...]] | None = None,
    masker: Masker | None = None,
) -> list[Difference]:
    """Every file missing, unexpected or changed (as data, without the `ignore`d fields of
    each "tree/file"), in path order; diffs and previews masked with `masker`."""
    masker = masker or Masker()
    differences: list[Difference] = []
    for file in sorted(expected.keys() | actual.keys()):
        path = f"{tree}/{file}"
        if file not in actual:
            differences.append(Difference(tree, file, "missing"))
        elif file not in expected:
            preview = _preview(path, actual[file], masker)
            differences.append(Difference(tree, file, "unexpected", preview))
        elif (
            diff := compare_files(
                path, expected[file], actual[file], (ignore or {}).get(path, ()), masker
            )
        ) is not None:
            differences.append(Difference(tree, file, "changed", diff))
    return differences


def compare_files(
    path: str,
    expected: bytes,
    actual: bytes,
    ignore: tuple[FieldPath, ...] = (),
    masker: Masker | None = None,
) -> list[str] | None:
    """None when the files are equal (as data, for YAML and JSON, the `ignore`d fields left
    out); else a unified diff of both sides normalised, then masked."""
    if expected == actual:
        return None
    left, right = normalise(path, expected, ignore), normalise(path, actual, ignore)
    if left == right:
        return None
    if isinstance(left, bytes) or isinstance(right, bytes):
        return [
            f"binary files differ ({len(expected)} bytes expected, {len(actual)} bytes produced)"
        ]
    if masker:
        left, right = masker.mask(left), masker.mask(right)
        if left == right:
            return ["the files differ only where a secret is masked"]
    diff = list(
        difflib.unified_diff(
            left.splitlines(), right.splitlines(), f"expected/{path}", f"actual/{path}", lineterm=""
        )
    )
    return diff or ["the files differ only in line endings or the newline at the end"]


def normalise(path: str, data: bytes, ignore: tuple[FieldPath, ...] = ()) -> str | bytes:
    """YAML and JSON as sorted, block-style YAML/JSON text without the `ignore`d fields; other
    text as it is; binary as bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _normalise_yaml(path, text, ignore)
    if suffix == ".json":
        try:
            value = json.loads(text)
        except ValueError:
            return text
        for field_path in ignore:
            remove(value, field_path)
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return text


def _normalise_yaml(path: str, text: str, ignore: tuple[FieldPath, ...]) -> str:
    """Every document dumped with sorted keys; the text as it is when it isn't valid YAML."""
    docs, problems = parse_yaml(text, path)
    if problems:
        return text
    values = [d.value for d in docs]
    for value in values:
        for field_path in ignore:
            remove(value, field_path)
    try:
        return yaml.safe_dump_all(
            values,
            sort_keys=True,
            allow_unicode=True,
            default_flow_style=False,
            # Never folded: a folded string could split a secret over lines, past masking.
            width=1 << 30,
        )
    except yaml.YAMLError:
        return text


def _preview(path: str, data: bytes, masker: Masker) -> list[str]:
    """The start of an unexpected file, as an all-added diff (masked)."""
    text = normalise(path, data)
    if isinstance(text, bytes):
        return [f"binary file, {len(data)} bytes"]
    lines = masker.mask(text).splitlines()
    shown = [f"+{line}" for line in lines[:_PREVIEW_LINES]]
    if len(lines) > _PREVIEW_LINES:
        shown.append(f"+... ({len(lines) - _PREVIEW_LINES} more lines)")
    return shown


def write_expectations(
    case_dir: Path, differences: list[Difference], actual: dict[str, dict[str, bytes]]
) -> list[str]:
    """Make the case's expected trees what the run produced (`actual`, masked), changing only
    the files in `differences`: files equal as data are left as the author wrote them.
    Returns the paths changed."""
    for difference in differences:
        target = case_dir / difference.path
        if difference.kind == "missing":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(actual[difference.tree][difference.file])
    for tree in actual:
        _remove_empty_folders(case_dir / tree)
    return [d.path for d in differences]


def _remove_empty_folders(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
