"""What `runner plan` shows of manifests and `output:` entries that read files: the file a
request picks, `file:` and a whole-document template (known after the commands), `if:` on
`output:` entries, and a large base file summed up."""

from __future__ import annotations

import json

STEP = """
    inputs:
      version: { query: .spec.version }
      install: { query: .spec.install, type: boolean }
    workdir: ../work
    run: [{ argv: [echo, "{}"], stdout: doc.json }]
    outputs: { rendered: { file: doc.json, query: . } }
    manifests:
      - { path: tekton.yaml, from: "../templates/tekton-${{ inputs.version }}.yaml" }
      - { path: patched.yaml, file: deployment.yaml, set: { .spec.replicas: 2 } }
      - { path: whole.yaml, document: "${{ outputs.rendered }}" }
      - { path: big.yaml, from: ../templates/big.yaml }
    output:
      - { from: "bundles/${{ inputs.version }}.yaml", to: operator.yaml, if: inputs.install }
      - { from: notes.txt, if: outputs.rendered }
"""


def test_plan_shows_the_files_manifests_and_output_entries_read(pipeline) -> None:
    templates = pipeline.root / "templates"
    templates.mkdir()
    (templates / "tekton-v2.yaml").write_text("kind: Pipeline\n")
    (templates / "big.yaml").write_text(
        "---\n".join(f"kind: ConfigMap\ndata: {{k: '{'x' * 2000}'}}\n" for _ in range(600))
    )
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"version": "v2", "install": False}})  # fmt: skip
    pipeline.step("files", STEP)
    result = pipeline.run("plan", "--format", "json")
    assert result.returncode == 0, result.stderr
    [plan] = json.loads(result.stdout)
    tekton, patched, whole, big = plan["manifests"]
    assert tekton["documents"] == [{"kind": "Pipeline"}]
    assert patched["documents"] == "read from deployment.yaml in the workdir after the commands"
    assert whole["documents"] == (
        "${{ outputs.rendered }}: the document is known after the commands"
    )
    assert big["documents"].startswith("600 document(s) copied from ")
    operator, notes = plan["output"]
    assert operator == {
        "from": "bundles/v2.yaml",
        "to": str(pipeline.output / "operator.yaml"),
        "if": "inputs.install",
        "copied": False,
    }
    assert notes["copied"] == "decided after the commands (it reads outputs)"
