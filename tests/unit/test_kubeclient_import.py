"""The stores import only the parts of the kubernetes package they use (start-up time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from runner.state.kubeclient_import import client_modules
configuration, api_client, config = client_modules()
client = api_client.ApiClient(configuration.Configuration())
loaded = [m for m in sys.modules if m.startswith("kubernetes")]
print(json.dumps({"modules": len(loaded), "models": "kubernetes.client.models.v1_config_map" in sys.modules,
                  "loader": callable(config.load_kube_config) and callable(config.load_incluster_config)}))
"""


def test_slim_import_loads_no_models_and_a_working_client():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["models"] is False
    assert seen["loader"] is True
    assert seen["modules"] < 30  # the whole package is ~700 modules


@pytest.mark.slow
def test_full_package_already_imported_is_reused():
    probe = "import kubernetes.client\n" + PROBE
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["models"] is True
