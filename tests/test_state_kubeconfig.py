"""KUBECONFIG values the kubernetes loader chokes on: each is a clear exit 3 naming the file,
before any command runs; a list of files works as kubectl reads it."""

from __future__ import annotations

import pytest

from tests.conftest import use_kube_api

STEP = """
    state:
      store: configmap
      name: counter
      files: [{path: count.txt, key: count}]
    workdir: ../work
    run:
      - script: echo ran > ran.txt; echo 1 > count.txt
"""


@pytest.fixture
def counter(pipeline):
    pipeline.step("counter", STEP)
    pipeline.env.pop("RUNNER_STATE_STORE", None)
    return pipeline


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: "/etc/passwd", "KUBECONFIG file /etc/passwd is not a usable kubeconfig: "
         "it holds a YAML string"),
        (lambda tmp: f"{tmp}/nope:/etc/passwd", "KUBECONFIG file /etc/passwd is not a usable"),
        (lambda tmp: f"{tmp}/a:{tmp}/b", "KUBECONFIG names no file that exists ({tmp}/a, "
         "{tmp}/b)"),
        (lambda tmp: str(tmp), "KUBECONFIG file {tmp} is not a usable kubeconfig: it is a folder"),
        (lambda tmp: _write(tmp / "bad.yaml", "clusters: [\n"), "KUBECONFIG file {tmp}/bad.yaml "
         "is not a usable kubeconfig: it is not valid YAML (line 2)"),
        (lambda tmp: _write(tmp / "list.yaml", "clusters: {a: 1}\n"), '"clusters" is not a list'),
        (lambda tmp: _write(tmp / "empty.yaml", ""), "KUBECONFIG file {tmp}/empty.yaml is empty"),
        (lambda tmp: _write(tmp / "noserver.yaml", NO_SERVER), "names no API server"),
    ],
    ids=["passwd", "list-with-passwd", "list-of-missing", "folder", "bad-yaml", "bad-clusters",
         "empty", "no-server"],
)
def test_a_kubeconfig_that_is_not_one_exits_3_naming_the_file(counter, tmp_path, make, says):
    result = counter.run("run", env={"KUBECONFIG": make(tmp_path)})
    assert result.returncode == 3, result.stderr
    assert says.replace("{tmp}", str(tmp_path)) in result.stderr
    assert "internal error" not in result.stderr and "SECRET-TOKEN" not in result.stderr
    assert not (counter.work / "ran.txt").exists()  # nothing ran


def test_a_list_of_kubeconfig_files_is_read_as_kubectl_reads_it(counter, api, tmp_path):
    counter.env["RUNNER_STATE_STORE"] = "configmap"  # use_kube_api takes it out again
    use_kube_api(counter, api, lease_seconds=5)
    real = counter.env["KUBECONFIG"]
    empty = _write(tmp_path / "empty.yaml", "")
    result = counter.run("run", env={"KUBECONFIG": f"{tmp_path}/missing:{empty}:{real}"})
    assert result.returncode == 0, result.stderr
    assert api.get_object("configmaps", "default", "counter")["data"]["count"] == "1\n"


NO_SERVER = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {}}]
users: [{name: u, user: {token: SECRET-TOKEN}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)
