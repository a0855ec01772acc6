"""Importing only the parts of the `kubernetes` client package the API client uses.

Apart from runner/state/kubeapi.py because it is an import trick, not API logic: it knows the
package's layout and nothing about requests.

`import kubernetes` executes the package's `__init__`, which imports every API class and
every model (about 700 modules, a quarter of a second and ~25 MB here), paid by every pipeline
pod. The stores need the Configuration, the ApiClient and the config loaders, and no models
(they exchange plain JSON). So when nothing has imported the package yet, we register empty
package modules for `kubernetes` and `kubernetes.client` whose `__path__` is the real one,
and import just those submodules; `kubernetes.client.models` is an empty stand-in because
ApiClient only consults it to build typed objects, which we never ask for.

If the package layout ever changes so that this fails, we fall back to the ordinary import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_SLIM = ("kubernetes", "kubernetes.client", "kubernetes.client.models")


def client_modules() -> tuple[Any, Any, Any]:
    """(kubernetes.client.configuration, kubernetes.client.api_client, kubernetes.config)."""
    if "kubernetes" not in sys.modules:
        try:
            return _slim_import()
        except Exception:
            for name in [
                m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")
            ]:
                del sys.modules[name]
    from kubernetes import config
    from kubernetes.client import api_client, configuration

    return configuration, api_client, config


def _slim_import() -> tuple[Any, Any, Any]:
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kubernetes is not installed")
    root = list(spec.submodule_search_locations)
    package = _package("kubernetes", root)
    client = _package("kubernetes.client", [f"{path}/client" for path in root])
    package.client = client  # type: ignore[attr-defined]
    models = types.ModuleType("kubernetes.client.models")
    sys.modules["kubernetes.client.models"] = models
    client.models = models  # type: ignore[attr-defined]
    configuration = importlib.import_module("kubernetes.client.configuration")
    api_client = importlib.import_module("kubernetes.client.api_client")
    # kubernetes.config does `from kubernetes.client import ApiClient, Configuration`.
    client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
    client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
    config = importlib.import_module("kubernetes.config")
    package.config = config  # type: ignore[attr-defined]
    return configuration, api_client, config


def _package(name: str, path: list[str]) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = path
    module.__package__ = name
    sys.modules[name] = module
    return module
