"""A fake Kubernetes API server on loopback, for tests that drive the real `kubernetes` client."""

from .control import DEFAULT_USER
from .server import FakeKubeAPI

__all__ = ["DEFAULT_USER", "FakeKubeAPI"]
