"""State keys: `validate` checks the key each state file is kept under (its `key:`, else its file
name) against the store the step names, and a key the store can't hold at save time is a clear
exit-3 error that still saves the other files. (Kubernetes stores: tests/test_state_kubernetes.py.)
"""

from __future__ import annotations

import pytest

from tests.test_validate import invalid, step, validate, where

KUBE_KEY_HINT = 'give the file an explicit key, e.g. "key: my-state.tfstate"'


def state_step(files: str, store: str | None = "configmap") -> str:
    line = f"  store: {store}\n" if store else ""
    return step(spec=f"state:\n{line}  files: {files}\nrun: [[x]]\n")


@pytest.mark.parametrize("store", ["configmap", "secret", None])
def test_a_file_name_that_is_no_kubernetes_key_is_reported_at_its_path(tmp_path, store):
    text = state_step('[{path: "my state.tfstate"}]', store)
    result = invalid(tmp_path, text)
    at = where(text, '"my state')
    result.has(
        f"a.yaml:{at}: spec.state.files[0].path: state key "
        '"my state.tfstate" (the file\'s name) is not valid: a ConfigMap/Secret key has only '
        "letters, digits, '-', '_' and '.' (this one has a space)",
        KUBE_KEY_HINT,
    )


def test_the_local_store_keeps_any_file_name(tmp_path):
    (tmp_path / "a.yaml").write_text(state_step('[{path: "my state.tfstate"}]', "local"))
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


def test_the_local_store_reserves_its_labels_file(tmp_path):
    text = state_step("[{path: labels.json}]", "local")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "labels.json")}: spec.state.files[0].path: state key "labels.json" '
        "(the file's name) is not valid: the local store keeps its own labels.json beside the "
        "state files",
        'give the file an explicit key, e.g. "key: state"',
    )


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("state/..", 'a ConfigMap/Secret key can\'t be "." or ".."'),
        (".", "names no file: a file name is needed"),
        ("a" * 254, "at most 253 characters (this one has 254)"),
        ("tf+state", "(this one has '+')"),
    ],
    ids=["dot-dot", "dot", "too-long", "plus"],
)
def test_keys_derived_from_odd_paths_are_reported(tmp_path, path, why):
    text = state_step(f'[{{path: "{path}"}}]')
    result = invalid(tmp_path, text)
    at = where(text, f'"{path}')
    first, hint = result.lines[0], result.lines[1]
    assert first.startswith(f"a.yaml:{at}: spec.state.files[0].path: ") and why in first, result.err
    assert hint.startswith("  hint: "), result.err


def test_a_key_of_253_characters_is_fine(tmp_path):
    text = state_step(f"[{{path: s, key: {'k' * 253}}}, {{path: {'p' * 253}}}]")
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err


@pytest.mark.parametrize("key", [".", ".."])
def test_an_explicit_dot_key_is_reported_at_the_key(tmp_path, key):
    text = state_step(f'[{{path: s, key: "{key}"}}]')
    result = invalid(tmp_path, text)
    at = where(text, f'"{key}"')
    assert any(
        line.startswith(f"a.yaml:{at}: spec.state.files[0].key: ")
        and f'state key "{key}" is not valid: a ConfigMap/Secret key can\'t be "." or ".."' in line
        for line in result.lines
    ), result.err


def test_a_duplicate_key_is_found_however_the_path_is_spelled(tmp_path):
    # "s.json/." is the file s.json, kept under the key "s.json", like the second file.
    text = state_step('[{path: "s.json/."}, {path: s.json}]')
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "{path: s.json}")}: spec.state.files[1]: key "s.json" is already '
        "used by files[0]",
        'give one of them its own "key:"',
    )


def test_an_explicit_key_clashing_with_a_file_name_is_a_duplicate(tmp_path):
    text = state_step("[{path: a, key: b.txt}, {path: dir/b.txt}]")
    result = invalid(tmp_path, text)
    result.has(
        f'a.yaml:{where(text, "{path: dir")}: spec.state.files[1]: key "b.txt" is already '
        "used by files[0]",
        'give one of them its own "key:"',
    )


# -- at save time: the local store -----------------------------------------------------------


def test_a_key_the_run_time_store_refuses_stops_the_run_before_any_command(pipeline):
    # Valid for the configmap store the step names; run locally (--state-store), the key
    # would be the local store's own labels.json.
    pipeline.step(
        "s",
        """
        state:
          store: configmap
          name: st
          files: [{path: labels.json}, {path: count.txt}]
        workdir: ../work
        run:
          - script: |
              echo '{"a": 1}' > labels.json; echo 7 > count.txt
    """,
    )
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    assert (
        'spec.state.files[0].path: the local store cannot keep state file labels.json under the '
        'key "labels.json"'
    ) in result.stderr
    assert not (pipeline.work / "count.txt").exists()
    assert not (pipeline.state_dir / "default" / "st").exists()
