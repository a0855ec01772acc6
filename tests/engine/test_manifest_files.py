"""Manifests and `output:` entries that read files: a base file a request picks (a templated
`from:`), a file the commands wrote (`file:`), a document that is one template, `if:` on
`output:` entries, and large base files. In process, through the Session; real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from runner.base.errors import CommandFailed, InvalidError
from runner.engine.outcomes import Outcome
from runner.engine.session import Session
from tests.engine.world import open_session


def _request(**spec: object) -> dict[str, object]:
    return spec


def _open(
    tmp: Path, spec: str, request: dict[str, object] | None = None, **environ: str
) -> Session:
    return open_session(tmp, {"10-files": spec}, request, **environ)


def _templates(tmp: Path, **files: str) -> Path:
    folder = tmp / "templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _written(tmp: Path, name: str) -> list[object]:
    return list(yaml.safe_load_all((tmp / "output" / name).read_text()))


PICKED = """
inputs: { version: { query: .spec.version } }
manifests:
  - path: tekton.yaml
    from: "../templates/tekton-${{ inputs.version }}.yaml"
"""


def test_a_request_picks_the_base_file_by_a_templated_from(tmp_path: Path) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\nmetadata: {name: one}\n",
                            "tekton-v2.yaml": "kind: Pipeline\nmetadata: {name: two}\n"})  # fmt: skip
    _open(tmp_path, PICKED, _request(version="v2")).run()
    assert _written(tmp_path, "tekton.yaml") == [{"kind": "Pipeline", "metadata": {"name": "two"}}]


@pytest.mark.parametrize(
    ("version", "says"),
    [("../secret", 'holds "/"'), ("..", 'is ".."'), ("", "is empty"), ("v1/x", 'holds "/"')],
)
def test_a_value_that_would_leave_the_folder_is_refused_before_anything_runs(
    tmp_path: Path, version: str, says: str
) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    spec = PICKED + "run: [[sh, -c, 'touch ran']]\nworkdir: ../work\n"
    with pytest.raises(InvalidError) as caught:
        _open(tmp_path, spec, _request(version=version))
    assert says in str(caught.value) and "10-files.yaml:" in str(caught.value)
    assert "spec.manifests[0].from" in str(caught.value)
    assert not (tmp_path / "work" / "ran").exists()


def test_a_base_file_the_request_picks_that_is_not_there_stops_before_anything_runs(
    tmp_path: Path,
) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    with pytest.raises(InvalidError, match=r'base file "../templates/tekton-v9.yaml" not found'):
        _open(tmp_path, PICKED, _request(version="v9"))


def test_a_templated_from_follows_no_link_below_its_folder(tmp_path: Path) -> None:
    folder = _templates(tmp_path)
    (tmp_path / "token").write_text("kind: Secret\n")
    os.symlink(tmp_path / "token", folder / "tekton-v1.yaml")
    with pytest.raises(InvalidError, match="is a symbolic link"):
        _open(tmp_path, PICKED, _request(version="v1"))


def test_a_templated_from_that_reads_outputs_is_refused_after_the_commands_with_exit_1(
    tmp_path: Path,
) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    spec = """
    workdir: ../work
    run: [{ argv: [echo, "../x"], stdout: v.txt }]
    outputs: { version: { file: v.txt } }
    manifests:
      - { path: tekton.yaml, from: "../templates/tekton-${{ outputs.version }}.yaml" }
    """
    session = _open(tmp_path, spec)
    with pytest.raises(CommandFailed, match='holds "/"') as caught:
        session.run()
    assert caught.value.exit_code == 1
    assert not (tmp_path / "output" / "tekton.yaml").exists()


def test_a_manifest_skipped_by_its_if_is_not_checked_before_the_commands(tmp_path: Path) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    spec = PICKED.replace("    from:", "    if: \"inputs.version != ''\"\n    from:")
    result = _open(tmp_path, spec, _request(version="")).run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE]
    assert not (tmp_path / "output" / "tekton.yaml").exists()


FILE = """
workdir: ../work
run: [[sh, -c, 'printf "kind: Deployment\\nspec: {replicas: 1}\\n" > deployment.yaml']]
manifests:
  - path: patched.yaml
    file: deployment.yaml
    set: { .spec.replicas: 3 }
"""


def test_a_manifest_from_a_file_the_commands_wrote_with_set(tmp_path: Path) -> None:
    _open(tmp_path, FILE).run()
    assert _written(tmp_path, "patched.yaml") == [{"kind": "Deployment", "spec": {"replicas": 3}}]


def test_a_file_the_commands_did_not_write_fails_the_step_naming_it(tmp_path: Path) -> None:
    spec = FILE.replace("> deployment.yaml", "> other.yaml")
    with pytest.raises(CommandFailed, match=r"the commands wrote no .*work/deployment.yaml") as c:
        _open(tmp_path, spec).run()
    assert c.value.exit_code == 1 and "spec.manifests[0].file" in str(c.value)


def test_a_file_not_written_in_a_dry_run_is_skipped(tmp_path: Path) -> None:
    result = _open(tmp_path, FILE, KRATIX_DRY_RUN="true").run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE]
    assert not (tmp_path / "output" / "patched.yaml").exists()


def test_a_file_that_is_a_link_is_never_followed(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("kind: Secret\n")
    spec = FILE.replace(
        "printf \"kind: Deployment\\nspec: {replicas: 1}\\n\" > deployment.yaml",
        f"ln -s {tmp_path / 'token'} deployment.yaml",
    )
    with pytest.raises(CommandFailed, match="is a symbolic link"):
        _open(tmp_path, spec).run()
    assert not (tmp_path / "output" / "patched.yaml").exists()


def test_a_file_without_set_is_copied_as_its_documents(tmp_path: Path) -> None:
    spec = """
    workdir: ../work
    run: [[sh, -c, 'printf "kind: ConfigMap\\ndata: {port: 5433}\\n---\\nkind: B\\n---\\n" > all.yaml']]
    manifests: [{ path: all.yaml, file: all.yaml }]
    """
    _open(tmp_path, spec).run()
    assert _written(tmp_path, "all.yaml") == [
        {"kind": "ConfigMap", "data": {"port": "5433"}},  # Kubernetes' string-only place
        {"kind": "B"},
    ]


WHOLE = """
workdir: ../work
run: [{ argv: [echo, '{"kind": "ConfigMap", "data": {"a": 1}}'], stdout: doc.json }]
outputs: { rendered: { file: doc.json, query: . } }
manifests: [{ path: whole.yaml, document: "${{ outputs.rendered }}" }]
"""


def test_a_document_that_is_one_template_is_its_value(tmp_path: Path) -> None:
    _open(tmp_path, WHOLE).run()
    assert _written(tmp_path, "whole.yaml") == [{"kind": "ConfigMap", "data": {"a": "1"}}]


def test_a_document_template_whose_value_is_not_a_mapping_is_a_located_error(
    tmp_path: Path,
) -> None:
    spec = WHOLE.replace('{"kind": "ConfigMap", "data": {"a": 1}}', "[1, 2]")
    with pytest.raises(CommandFailed, match=r"spec.manifests\[0\].document: document 1 is a list"):
        _open(tmp_path, spec).run()


OUTPUT_IF = """
inputs: { install: { query: .spec.install, type: boolean } }
workdir: ../work
run: [[sh, -c, 'echo "kind: Bundle" > bundle.yaml']]
output: [{ from: bundle.yaml, to: operator.yaml, if: inputs.install }]
"""


@pytest.mark.parametrize("install", [True, False])
def test_an_output_entry_is_copied_only_when_its_if_holds(tmp_path: Path, install: bool) -> None:
    _open(tmp_path, OUTPUT_IF, _request(install=install)).run()
    assert (tmp_path / "output" / "operator.yaml").exists() is install


def test_an_output_if_may_read_outputs(tmp_path: Path) -> None:
    spec = OUTPUT_IF.replace("if: inputs.install", "if: outputs.made") + (
        "outputs: { made: { jmespath: '`false`' } }\n"
    )
    _open(tmp_path, spec, _request(install=True)).run()
    assert not (tmp_path / "output" / "operator.yaml").exists()


def test_an_output_from_a_request_picks_is_copied(tmp_path: Path) -> None:
    spec = """
    inputs: { version: { query: .spec.version } }
    workdir: ../work
    run: [[sh, -c, 'mkdir -p b && echo v2 > b/v2.yaml']]
    output: [{ from: "b/${{ inputs.version }}.yaml" }]
    """
    _open(tmp_path, spec, _request(version="v2")).run()
    assert (tmp_path / "output" / "b" / "v2.yaml").read_text() == "v2\n"


def test_an_output_from_value_holding_a_slash_stops_before_anything_runs(tmp_path: Path) -> None:
    spec = """
    inputs: { version: { query: .spec.version } }
    workdir: ../work
    run: [[sh, -c, 'touch ran']]
    output: [{ from: "b/${{ inputs.version }}.yaml", to: x.yaml }]
    """
    with pytest.raises(InvalidError, match=r"spec.output\[0\].from: .*holds \"/\""):
        _open(tmp_path, spec, _request(version="../../etc/passwd"))
    assert not (tmp_path / "work" / "ran").exists()


def test_a_from_reading_outputs_no_dry_run_command_made_is_skipped(tmp_path: Path) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    spec = """
    workdir: ../work
    run: [{ argv: [echo, v1], stdout: v.txt }]
    outputs: { version: { file: v.txt } }
    manifests:
      - { path: tekton.yaml, from: "../templates/tekton-${{ outputs.version }}.yaml" }
    output: [{ from: "b-${{ outputs.version }}.yaml", to: b.yaml }]
    """
    result = _open(tmp_path, spec, KRATIX_DRY_RUN="true").run()
    assert [o.outcome for o in result.outcomes] == [Outcome.DONE]
    assert list((tmp_path / "output").iterdir()) == []


def test_a_from_reading_an_earlier_steps_output_is_checked_at_its_turn_with_exit_1(
    tmp_path: Path,
) -> None:
    _templates(tmp_path, **{"tekton-v1.yaml": "kind: Pipeline\n"})
    (tmp_path / "steps.d").mkdir()
    (tmp_path / "steps.d" / "05-first.yaml").write_text(
        "apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\nmetadata: {name: first}\nspec:\n"
        "  workdir: ../work\n  run: [{ argv: [echo, ../x], stdout: v.txt }]\n"
        "  outputs: { version: { file: v.txt } }\n"
    )
    spec = """
    manifests:
      - { path: tekton.yaml, from: "../templates/tekton-${{ steps.first.outputs.version }}.yaml" }
    """
    session = _open(tmp_path, spec)
    assert session.prepared[1].waiting_for == {"first"}
    with pytest.raises(CommandFailed, match='holds "/"') as caught:
        session.run()
    assert caught.value.exit_code == 1
