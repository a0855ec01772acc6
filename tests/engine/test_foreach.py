"""forEach on values and manifests, in process through the Session: one result per item, in
order; same-path items share a file; problems found before anything runs when they can be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.base.errors import CommandFailed, InvalidError
from runner.engine.manifests import build_manifests
from runner.engine.outcomes import Outcome
from runner.language.foreach import MAX_ITEMS, ForEachError, items_of
from tests.engine.world import open_session

USERS = [{"name": "ann", "role": "admin"}, {"name": "bob", "role": "dev"},
         {"name": "cid", "role": "admin"}]  # fmt: skip


def _documents(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text()))


VALUES = """
inputs:
  users: { query: .spec.users, required: false }
  tags: { query: .spec.tags, required: false }
values:
  secretName: { jmespath: "'db'" }
  userSecrets:
    forEach: inputs.users
    jmespath: "merge(item, {secretName: values.secretName, at: index})"
  roles: { forEach: inputs.users, from: item.role, map: { admin: 10 }, default: 1 }
  tagList: { forEach: inputs.tags, jmespath: "join('=', [item.key, item.value])" }
status:
  secrets: "${{ values.userSecrets }}"
  roles: "${{ values.roles }}"
  tags: "${{ values.tagList }}"
"""


def test_a_value_with_foreach_is_a_list_of_one_result_per_item_in_order(tmp_path: Path) -> None:
    session = open_session(tmp_path, {"10-v": VALUES}, {"users": USERS, "tags": {"b": "1", "a": "2"}})
    values = session.prepared[0].values
    assert values["userSecrets"] == [
        {**user, "secretName": "db", "at": i} for i, user in enumerate(USERS)
    ]
    assert values["roles"] == [10, 1, 10]  # from + map, per item
    assert values["tagList"] == ["b=1", "a=2"]  # a mapping: {key, value} items in its order


def test_a_missing_list_gives_no_items(tmp_path: Path) -> None:
    session = open_session(tmp_path, {"10-v": VALUES}, {})
    values = session.prepared[0].values
    assert values["userSecrets"] == [] and values["tagList"] == []


def test_a_value_foreach_over_text_is_found_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InvalidError) as raised:
        open_session(tmp_path, {"10-v": VALUES}, {"users": "ann,bob"})
    problem, roles = raised.value.problems
    assert roles.path == "spec.values.roles.forEach"
    assert problem.path == "spec.values.userSecrets.forEach"
    assert "gives a string, not a list or a mapping" in problem.message
    assert "ann" not in problem.message  # the type, never the value
    assert problem.line is not None


MANIFESTS = """
inputs:
  users: { query: .spec.users }
workdir: ../work
run: [[sh, -c, "echo ran > ran.txt"]]
manifests:
  - path: "users/${{ item.name }}.yaml"
    forEach: inputs.users
    document:
      apiVersion: v1
      kind: ConfigMap
      metadata: { name: "${{ item.name }}" }
      data: { index: "${{ index }}" }
  - path: "roles/${{ item.role }}.yaml"
    forEach: inputs.users
    if: "item.name != 'bob'"
    document: { apiVersion: v1, kind: ConfigMap, metadata: { name: "${{ item.name }}-${{ index }}" } }
"""


def test_a_manifest_with_foreach_writes_one_document_per_item(tmp_path: Path) -> None:
    session = open_session(tmp_path, {"10-m": MANIFESTS}, {"users": USERS})
    result = session.run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE]
    out = tmp_path / "output"
    for i, user in enumerate(USERS):
        [document] = _documents(out / "users" / f"{user['name']}.yaml")
        assert document["metadata"]["name"] == user["name"]
        assert document["data"] == {"index": str(i)}
    # ann and cid render the same path: one file, in item order; bob's `if:` is false.
    names = [d["metadata"]["name"] for d in _documents(out / "roles" / "admin.yaml")]
    assert names == ["ann-0", "cid-2"]
    assert not (out / "roles" / "dev.yaml").exists()


def test_a_manifest_foreach_over_text_stops_the_run_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(InvalidError) as raised:
        open_session(tmp_path, {"10-m": MANIFESTS}, {"users": 5})
    problem, _ = raised.value.problems
    assert problem.path == "spec.manifests[0].forEach"
    assert "gives an integer" in problem.message
    assert not (tmp_path / "work" / "ran.txt").exists()


def test_a_foreach_over_an_output_that_is_no_list_fails_the_step_after_its_commands(
    tmp_path: Path,
) -> None:
    body = """
    workdir: ../work
    run: [[sh, -c, "echo plain > users.txt"]]
    outputs: { users: { file: users.txt } }
    manifests:
      - path: "u/${{ item }}.yaml"
        forEach: outputs.users
        document: { kind: ConfigMap, metadata: { name: "${{ item }}" } }
    """
    session = open_session(tmp_path, {"10-m": body})
    with pytest.raises(CommandFailed) as raised:
        session.run()
    assert raised.value.problems[0].path == "spec.manifests[0].forEach"
    assert (tmp_path / "work" / "users.txt").exists()
    assert list((tmp_path / "output").iterdir()) == []


def test_a_foreach_over_an_earlier_steps_output_is_decided_at_its_turn(tmp_path: Path) -> None:
    steps = {
        "10-look": """
        workdir: ../work
        run: [[sh, -c, "echo '[a, b]' > l.yaml"]]
        outputs: { names: { file: l.yaml, query: . } }
        """,
        "20-use": """
        values: { upper: { forEach: steps.look.outputs.names, jmespath: upper(item) } }
        manifests:
          - path: "n/${{ item }}.yaml"
            forEach: values.upper
            document: { kind: ConfigMap, metadata: { name: "${{ item }}" } }
        """,
    }
    session = open_session(tmp_path, steps)
    assert session.prepared[1].waiting_for == {"look"}
    session.run()
    assert sorted(p.name for p in (tmp_path / "output" / "n").iterdir()) == ["A.yaml", "B.yaml"]


def test_a_secret_in_one_items_document_writes_nothing(tmp_path: Path) -> None:
    body = """
    inputs: { users: { query: .spec.users } }
    secrets: { PW: { env: PW } }
    manifests:
      - path: "u/${{ item.name }}.yaml"
        forEach: inputs.users
        document: { kind: ConfigMap, metadata: { name: "${{ item.name }}" } }
    """
    users = [*USERS, {"name": "bob-the-admin"}]  # the last user's name is the secret's value
    session = open_session(tmp_path, {"10-m": body}, {"users": users}, PW="bob-the-admin")
    with pytest.raises(CommandFailed) as raised:
        session.run()
    assert "would hold a secret's value" in raised.value.problems[0].message
    assert not (tmp_path / "output" / "u").exists()


def test_the_builder_writes_nothing(tmp_path: Path) -> None:
    session = open_session(tmp_path, {"10-m": MANIFESTS}, {"users": USERS})
    prepared = session.prepared[0]
    built = build_manifests(
        prepared.step, prepared.context, session.ctx.output_dir, session.log.masker
    )
    assert [len(e.files) for e in built] == [3, 1]
    assert built[1].skipped == [1] and built[1].files[0].items == [0, 2]
    assert list((tmp_path / "output").iterdir()) == []


def test_items_of_lists_mappings_null_and_refuses_the_rest() -> None:
    assert items_of(None, "x") == []
    assert items_of({"a": 1}, "x") == [{"key": "a", "value": 1}]
    with pytest.raises(ForEachError, match="gives a string"):
        items_of("abc", "inputs.x")
    with pytest.raises(ForEachError, match="more than 10,000"):
        items_of(list(range(MAX_ITEMS + 1)), "inputs.x")


def test_a_base_file_is_set_per_item_and_each_item_gets_its_own_copy(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("kind: ConfigMap\nmetadata: { name: TBD }\n")
    body = """
    inputs: { names: { query: .spec.names } }
    manifests:
      - path: all.yaml
        forEach: inputs.names
        from: ../base.yaml
        set: { .metadata.name: "${{ item }}", .metadata.labels.at: "${{ index }}" }
    """
    session = open_session(tmp_path, {"10-m": body}, {"names": ["a", "b", "c"]})
    session.run()
    documents = _documents(tmp_path / "output" / "all.yaml")
    assert [d["metadata"] for d in documents] == [
        {"name": n, "labels": {"at": str(i)}} for i, n in enumerate("abc")
    ]


def test_a_value_over_an_earlier_steps_output_that_is_no_list_fails_after_it_ran(
    tmp_path: Path,
) -> None:
    steps = {
        "10-look": """
        workdir: ../work
        run: [[sh, -c, "echo plain > l.txt"]]
        outputs: { names: { file: l.txt } }
        """,
        "20-use": """
        values: { upper: { forEach: steps.look.outputs.names, jmespath: upper(item) } }
        status: { names: "${{ values.upper }}" }
        """,
    }
    session = open_session(tmp_path, steps)
    with pytest.raises(CommandFailed) as raised:  # exit 1: a command ran
        session.run()
    assert raised.value.problems[0].path == "spec.values.upper.forEach"
    assert (tmp_path / "work" / "l.txt").exists()
