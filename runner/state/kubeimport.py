"""Importing the parts of the `kubernetes` package the stores use, and nothing else."""

from __future__ import annotations

from typing import Any


def client_modules() -> tuple[Any, Any, Any]:
    """(configuration module, api_client module, kubernetes.config)."""
    from kubernetes import config
    from kubernetes.client import api_client, configuration

    return configuration, api_client, config
