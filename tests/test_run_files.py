"""`runner run` as users run it, on files a request picks and files the commands wrote: the exit
code and the located message (2 before anything ran, 1 after the commands)."""

from __future__ import annotations

PICKED = """
    inputs: { version: { query: .spec.version } }
    workdir: ../work
    run: [[sh, -c, "touch ran"]]
    manifests:
      - { path: tekton.yaml, from: "../templates/tekton-${{ inputs.version }}.yaml" }
"""


def test_a_request_value_that_leaves_the_folder_is_exit_2_before_anything_runs(pipeline) -> None:
    (pipeline.root / "templates").mkdir()
    (pipeline.root / "templates" / "tekton-v1.yaml").write_text("kind: Pipeline\n")
    pipeline.request({"apiVersion": "x/v1", "kind": "App", "metadata": {"name": "a"},
                      "spec": {"version": "../../../etc/passwd"}})  # fmt: skip
    pipeline.step("picked", PICKED)
    result = pipeline.run("run")
    assert result.returncode == 2, result.stderr
    # At the template in the file: line 10 (after the 5 header lines), column 42.
    assert "picked.yaml:10:42: spec.manifests[0].from: ${{ inputs.version }} in" in result.stderr
    assert 'renders a value that holds "/"' in result.stderr
    assert "etc/passwd" not in result.stderr  # the value is not repeated
    assert not (pipeline.work / "ran").exists()


def test_a_file_the_commands_did_not_write_is_exit_1_naming_it(pipeline) -> None:
    pipeline.step(
        "patch",
        """
        workdir: ../work
        run: [[sh, -c, "echo kind: A > other.yaml"]]
        manifests: [{ path: p.yaml, file: deployment.yaml, set: { .spec.replicas: 2 } }]
        """,
    )
    result = pipeline.run("run")
    assert result.returncode == 1, result.stderr
    assert "spec.manifests[0].file: manifest p.yaml: the commands wrote no " in result.stderr
    assert str(pipeline.work / "deployment.yaml") in result.stderr
    assert not (pipeline.output / "p.yaml").exists()
