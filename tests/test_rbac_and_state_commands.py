"""`runner rbac` and `runner state show|rm|unlock`: what operators use around the stores."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from runner.state import open_store
from runner.state.base import StateRef
from tests.conftest import REPO, hold_lease
from tests.kubeapi import FakeKubeAPI

STATEFUL = """
    state:
      store: {store}
      name: "${{{{ inputs.name }}}}-state"
      files: [{{path: out.txt, key: out}}]
      lock: {lock}
    inputs: {{name: {{query: .metadata.name}}}}
    workdir: ../work
    run: [[sh, -c, 'echo hello > out.txt']]
"""


def rbac(pipeline, *names: str) -> dict:
    # rbac takes no Kratix folders, so not pipeline.run()
    result = subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(pipeline.steps), *names],
        capture_output=True,
        text=True,
        env=pipeline.env,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout) or {}


def test_rbac_grants_exactly_the_verbs_each_store_uses(pipeline):
    pipeline.step("cm", STATEFUL.format(store="configmap", lock="true"))
    pipeline.step("sec", STATEFUL.format(store="secret", lock="false"))
    pipeline.step("loc", STATEFUL.format(store="local", lock="true"))
    assert rbac(pipeline, "cm") == {
        "rbac": {
            "permissions": [
                {
                    "apiGroups": [""],
                    "verbs": ["get", "list", "create", "update", "delete"],
                    "resources": ["configmaps"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "verbs": ["get", "create", "update", "delete"],
                    "resources": ["leases"],
                },
            ]
        }
    }
    assert rbac(pipeline, "sec")["rbac"]["permissions"] == [
        {
            "apiGroups": [""],
            "verbs": ["get", "list", "create", "update", "delete"],
            "resources": ["secrets"],
        },
    ]
    assert rbac(pipeline, "loc") == {}
    assert [p["resources"][0] for p in rbac(pipeline)["rbac"]["permissions"]] == [
        "configmaps",
        "secrets",
        "leases",
    ]


def test_rbac_for_the_shipped_steps_matches_the_permissions_they_need():
    result = subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(REPO / "steps.d")],
        capture_output=True,
        text=True,
    )
    permissions = yaml.safe_load(result.stdout)["rbac"]["permissions"]
    assert {p["resources"][0] for p in permissions} == {"configmaps", "leases"}


def test_rbac_unknown_step_exits_2(pipeline):
    result = subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(pipeline.steps), "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and 'no step named "nope"' in result.stderr


def test_rbac_entry_grants_what_a_forbidden_run_asked_for(pipeline, tmp_path):
    """The verbs `runner rbac` prints are the ones a run needs: forbid any one and the run fails."""
    pipeline.step("cm", STATEFUL.format(store="configmap", lock="true"))
    granted = {
        (p["resources"][0], v)
        for p in rbac(pipeline, "cm")["rbac"]["permissions"]
        for v in p["verbs"]
    }
    with FakeKubeAPI() as api:
        pipeline.env.pop("RUNNER_STATE_STORE")
        pipeline.env["KUBECONFIG"] = str(api.write_kubeconfig(tmp_path / "kc"))
        assert pipeline.run("run").returncode == 0
        assert pipeline.run("run").returncode == 0
        used = {
            (
                path.split("/")[-2] if method != "POST" else path.split("/")[-1],
                {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete"}[method],
            )
            for method, path, _status in api.requests
        }
    assert used <= granted


@pytest.fixture
def stored(pipeline):
    pipeline.step("keep", STATEFUL.format(store="local", lock="true"))
    assert pipeline.run("run").returncode == 0
    return pipeline


def test_state_show_lists_keys_and_prints_one_raw(stored):
    listing = stored.run("state", "show", "keep")
    assert listing.returncode == 0, listing.stderr
    assert "my-app-state" in listing.stdout and "out: 6 bytes" in listing.stdout
    raw = stored.run("state", "show", "keep", "--key", "out")
    assert raw.stdout == "hello\n"


def test_state_show_does_not_need_the_secrets(stored):
    stored.step(
        "keep",
        STATEFUL.format(store="local", lock="true").replace(
            "    workdir:", "    secrets: {PW: {env: PW}}\n    workdir:"
        ),
    )
    assert stored.run("state", "show", "keep").returncode == 0


def test_state_rm_removes_and_then_reports_nothing(stored):
    assert "removed" in stored.run("state", "rm", "keep").stdout
    shown = stored.run("state", "show", "keep")
    assert shown.returncode == 1 and "no state" in shown.stderr


def test_state_unlock_breaks_a_stale_lease(pipeline, tmp_path):
    pipeline.step("cm", STATEFUL.format(store="configmap", lock="true"))
    with FakeKubeAPI() as api:
        pipeline.env.pop("RUNNER_STATE_STORE")
        pipeline.env["KUBECONFIG"] = str(api.write_kubeconfig(tmp_path / "kc"))
        hold_lease(api, "my-app-state", "stuck/1", seconds=3600)
        held = pipeline.run("run", "--lock-wait", "0.2")
        assert held.returncode == 0 and "is held by stuck/1" in held.stderr
        # Kratix retries in a new pod, with a fresh metadata folder.
        (pipeline.metadata / "workflow-control.yaml").unlink()
        result = pipeline.run("state", "unlock", "cm")
        assert result.returncode == 0 and "unlocked configmap default/my-app-state" in result.stdout
        again = pipeline.run("run", "--lock-wait", "0.2")
        assert again.returncode == 0 and "saved state" in again.stderr


def test_state_of_a_stateless_step_is_a_clear_error(pipeline):
    pipeline.step("plain", "run: [[true]]")
    result = pipeline.run("state", "show", "plain")
    assert result.returncode == 2 and "keeps no state" in result.stderr


def test_rbac_grants_a_fixed_state_namespace_and_flags_a_templated_one(pipeline):
    fixed = STATEFUL.format(store="configmap", lock="true")
    pipeline.step("fixed", fixed.replace("      store:", "      namespace: tf-state\n      store:"))
    templated = STATEFUL.format(store="secret", lock="false")
    pipeline.step("templated", templated.replace(
        "      store:", '      namespace: "${{ kratix.object.namespace }}"\n      store:'))
    entries = rbac(pipeline, "fixed")["rbac"]["permissions"]
    assert [(e["resources"][0], e.get("resourceNamespace")) for e in entries] == [
        ("configmaps", "tf-state"),
        ("leases", "tf-state"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "runner", "rbac", "--steps-dir", str(pipeline.steps), "templated"],
        capture_output=True, text=True, env=pipeline.env,
    )
    assert "templated: state.namespace is a template; add resourceNamespace" in result.stdout
    assert "resourceNamespace:" not in result.stdout.split("rbac:")[1]


def test_state_rm_refuses_while_a_run_holds_the_lock_unless_forced(pipeline):
    pipeline.step(
        "keeper",
        """
        state: {name: keeper, files: [{path: f.txt}]}
        workdir: ../work
        run: [[sh, -c, 'echo 1 > f.txt']]
        """,
    )
    assert pipeline.run("run").returncode == 0
    store = open_store("local", str(pipeline.state_dir), {})
    ref = StateRef("keeper", "keeper", "default", "my-app", "default")
    with store.lock(ref, 0):  # a run in progress
        refused = pipeline.run("state", "rm", "keeper")
        assert refused.returncode == 3, refused.stderr
        assert "not removed" in refused.stderr and "--force" in refused.stderr
        assert store.load(ref) is not None
        forced = pipeline.run("state", "rm", "keeper", "--force")
        assert forced.returncode == 0 and "removed" in forced.stdout, forced.stderr
    assert store.load(ref) is None
    assert pipeline.run("run").returncode == 0
    removed = pipeline.run("state", "rm", "keeper")  # no run: taken, removed, released
    assert removed.returncode == 0 and "removed" in removed.stdout, removed.stderr
    assert store.load(ref) is None
