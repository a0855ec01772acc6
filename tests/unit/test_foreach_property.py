"""forEach over any list: exactly one document per item, in order, and no request value (YAML
syntax, `${{`, `---`, newlines, keys) adds a key or a document, once written and read back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.manifests import build_entry
from runner.language.documents import dump
from runner.platform.masking import Masker
from runner.stepfile.loader import load_steps
from runner.stepfile.model import Step

STEP = """apiVersion: runner.kratix.dev/v1alpha1
kind: Step
metadata: {name: users}
spec:
  inputs: { users: { query: .spec.users } }
  manifests:
    - path: all.yaml
      forEach: inputs.users
      document:
        kind: ConfigMap
        metadata: { name: "${{ item.name }}", labels: { n: "${{ index }}" } }
        data: { note: "user ${{ item.name }}: ${{ item.note }}", whole: "${{ item.note }}" }
        spec: { item: "${{ item }}" }
    - path: "each/${{ index }}.yaml"
      forEach: inputs.users
      document: { kind: ConfigMap, metadata: { name: "${{ item.name }}" } }
"""


def _step() -> tuple[Step, Path]:
    root = Path(tempfile.mkdtemp(prefix="foreach-property-"))
    (root / "steps").mkdir()
    (root / "out").mkdir()
    (root / "steps" / "users.yaml").write_text(STEP)
    loaded = load_steps([root / "steps"])
    assert not loaded.problems, loaded.problems
    return loaded.steps[0], root / "out"


THE_STEP, OUTPUT = _step()
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["${{ inputs.users }}", "---", "a: b\nc: d", "- x", "{k: v}", "'\"", "&a *a",
                     "!!python/object:x", "\n---\nkind: Secret\n", "$${{ x }}", "null", "1e3"]),
)  # fmt: skip
USERS = st.lists(
    st.fixed_dictionaries(
        {"name": HOSTILE, "note": HOSTILE},
        optional={"extra": st.dictionaries(HOSTILE, HOSTILE, max_size=3)},
    ),
    max_size=12,
)


def _context(users: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inputs": {"users": users}, "values": {}, "kratix": {}, "steps": {}, "outputs": {}}


@settings(max_examples=40, deadline=None)
@given(USERS)
def test_one_document_per_item_in_order_and_nothing_added(users: list[dict[str, Any]]) -> None:
    together, each = THE_STEP.manifests
    built = build_entry(THE_STEP, together, _context(users), OUTPUT, Masker())
    assert len(built.files) == (1 if users else 0)
    read = [] if not users else list(yaml.safe_load_all(dump(built.files[0].documents)))
    assert len(read) == len(users)
    for index, (document, user) in enumerate(zip(read, users, strict=True)):
        assert set(document) == {"kind", "metadata", "data", "spec"}
        assert document["metadata"] == {"name": user["name"], "labels": {"n": str(index)}}
        assert document["data"] == {
            "note": f"user {user['name']}: {user['note']}",
            "whole": user["note"],
        }
        assert document["spec"] == {"item": user}
    files = build_entry(THE_STEP, each, _context(users), OUTPUT, Masker()).files
    assert [f.relative for f in files] == [f"each/{i}.yaml" for i in range(len(users))]
    assert [f.documents[0]["metadata"]["name"] for f in files] == [u["name"] for u in users]
    assert not list(OUTPUT.iterdir())  # the builder writes nothing
