"""`runner validate` on manifests and `output:` entries that read files: a templated `from:`
(its fixed folder, what follows the template), `file:`, a document that is one template, `if:`
on `output:` entries, and base files up to 32 MiB; each rule broken on purpose and reported at
its `file:line:col`."""

from __future__ import annotations

import os
from pathlib import Path

from runner.language.documents import MAX_BASE_BYTES
from tests.test_validate import invalid, runner_in_subprocess, step, validate, where

INPUTS = "inputs: { version: { query: .spec.version } }\n"


def _valid(tmp_path: Path, text: str) -> None:
    (tmp_path / "a.yaml").write_text(text)
    result = validate(tmp_path, "a.yaml")
    assert result.code == 0, result.err + result.out


def test_the_new_forms_are_valid(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "bundles").mkdir()
    _valid(
        tmp_path,
        step(
            spec=INPUTS + "workdir: .\n"
            "run: [{ argv: [echo, '{}'], stdout: doc.json }]\n"
            "outputs: { rendered: { file: doc.json, query: . } }\n"
            "manifests:\n"
            "  - { path: t.yaml, from: 'templates/tekton-${{ inputs.version }}.yaml' }\n"
            "  - { path: p.yaml, file: out/deployment.yaml, set: { .spec.replicas: 3 } }\n"
            "  - { path: w.yaml, document: '${{ outputs.rendered }}' }\n"
            "output:\n"
            "  - { from: 'bundles/${{ inputs.version }}.yaml', to: operator.yaml, "
            "if: 'inputs.version && outputs.rendered' }\n"
        ),
    )


def test_a_templated_from_needs_its_folder_to_exist(tmp_path: Path) -> None:
    text = step(spec=INPUTS + "manifests:\n  - { path: t.yaml, from: '../tpl/t-${{ inputs.version }}.yaml' }\n")
    result = invalid(tmp_path, text, runner=runner_in_subprocess)
    at = where(text, "'../tpl")
    result.has(
        f"a.yaml:{at}: spec.manifests[0].from: the folder \"../tpl\" before the "
        "template in \"../tpl/t-${{ inputs.version }}.yaml\" does not exist",
        "the path is relative to this step file's folder; a template picks a file in that folder",
    )


def test_a_templated_from_may_not_climb_after_its_template(tmp_path: Path) -> None:
    text = step(spec=INPUTS + "manifests:\n  - { path: t.yaml, from: '${{ inputs.version }}/../x.yaml' }\n")
    result = invalid(tmp_path, text)
    assert 'spec.manifests[0].from: "${{ inputs.version }}/../x.yaml": ".." after a template' in result.err


def test_a_misspelt_name_in_a_templated_from_suggests_the_closest(tmp_path: Path) -> None:
    text = step(spec=INPUTS + "manifests:\n  - { path: t.yaml, from: 't-${{ inputs.versoin }}.yaml' }\n")
    result = invalid(tmp_path, text)
    assert 'did you mean "inputs.version"?' in result.err, result.err


def test_a_sensitive_output_may_not_pick_a_file(tmp_path: Path) -> None:
    text = step(
        spec="run: [{ argv: [echo, x], stdout: t.txt }]\n"
        "outputs: { token: { file: t.txt, sensitive: true } }\n"
        "output: [{ from: 'a-${{ outputs.token }}', to: a.yaml }]\n"
    )
    result = invalid(tmp_path, text)
    assert "spec.output[0].from" in result.err and "sensitive" in result.err, result.err


def test_file_names_a_file_below_the_workdir(tmp_path: Path) -> None:
    for bad in ("/etc/passwd", "../x.yaml"):
        text = step(spec=f"run: [[echo]]\nmanifests: [{{ path: p.yaml, file: '{bad}' }}]\n")
        result = invalid(tmp_path, text)
        result.has(
            f"a.yaml:{where(text, repr(bad))}: spec.manifests[0].file: file \"{bad}\" is not a "
            "file below the workdir",
            'file: reads a file the commands wrote, relative to the workdir: e.g. "file: out.yaml"',
        )


def test_one_source_per_manifest_file_included(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: A\n")
    text = step(spec="run: [[echo]]\nmanifests: [{ path: p.yaml, file: x.yaml, from: b.yaml }]\n")
    result = invalid(tmp_path, text)
    assert "give one of document, documents, from or file, not from and file" in result.err


def test_a_document_given_as_text_is_exactly_one_template(tmp_path: Path) -> None:
    text = step(spec="run: [[echo]]\nmanifests: [{ path: p.yaml, document: 'kind: ${{ kratix.action }}' }]\n")
    result = invalid(tmp_path, text)
    assert "spec.manifests[0].document: a document given as text must be exactly one template" in result.err


def test_an_output_if_is_checked_as_an_expression(tmp_path: Path) -> None:
    text = step(spec=INPUTS + "output: [{ from: a.yaml, if: 'inputs.verison' }]\n")
    result = invalid(tmp_path, text)
    assert "spec.output[0].if" in result.err and 'did you mean "inputs.version"?' in result.err, result.err


def test_an_output_from_in_a_step_without_commands_needs_its_folder(tmp_path: Path) -> None:
    text = step(spec=INPUTS + "output: [{ from: 'crds/${{ inputs.version }}.yaml', to: c.yaml }]\n")
    result = invalid(tmp_path, text)
    assert 'the folder "crds" before the template' in result.err, result.err
    assert "relative to the workdir" in result.err
    (tmp_path / "crds").mkdir()
    assert validate(tmp_path, "a.yaml").code == 0


def test_a_base_file_over_32_mib_is_a_located_error_and_32_mib_is_not(tmp_path: Path) -> None:
    text = step(spec="manifests: [{ path: b.yaml, from: big.yaml }]\n")
    with open(tmp_path / "big.yaml", "wb") as big:  # sparse: nothing to write
        big.truncate(MAX_BASE_BYTES + 1)
    result = invalid(tmp_path, text)
    result.has(
        f"a.yaml:{where(text, 'big.yaml')}: spec.manifests[0].from: base file big.yaml is 32.0 MiB "
        f"({MAX_BASE_BYTES + 1} bytes), more than the 32 MiB a base file may be",
        "split the file, or ship it in the output with output:",
    )
    os.truncate(tmp_path / "big.yaml", MAX_BASE_BYTES)  # the size is allowed: what is in it is not
    result = invalid(tmp_path, text)
    assert "more than the 32 MiB" not in result.err
    assert "big.yaml:1:1: not a text file (it contains NUL bytes)" in result.err, result.err
