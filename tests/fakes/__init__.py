"""Test doubles that behave like the real thing: an S3 server and a stand-in terraform.

``S3Server`` (tests/fakes/s3.py) is moto's S3 server on loopback with MinIO-style
credential checks; ``FAKE_BIN`` is the folder holding the stand-in ``terraform``
(prepend it to PATH; it needs only a python3 with the standard library).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.s3 import S3Server

FAKE_BIN = Path(__file__).resolve().parent / "bin"
FAKE_TERRAFORM = FAKE_BIN / "terraform"

__all__ = ["FAKE_BIN", "FAKE_TERRAFORM", "S3Server", "terraform_env"]


def terraform_env(
    s3: S3Server | None = None, base: dict[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """An environment for running the stand-in terraform.

    FAKE_BIN and this interpreter's folder first on PATH, then the S3 server's
    MINIO_ENDPOINT / MINIO_USER / MINIO_PASSWORD, then ``extra``.
    """
    env = dict(os.environ if base is None else base)
    # The stand-in runs on any python3; this interpreter's folder comes next so that it
    # finds a real one quickly rather than through a slow shim (pyenv's).
    env["PATH"] = os.pathsep.join(
        [str(FAKE_BIN), str(Path(sys.executable).parent), env.get("PATH", os.defpath)]
    )
    if s3 is not None:
        env.update(s3.env)
    env.update(extra)
    return env


def __getattr__(name: str) -> Any:
    # Imported lazily so that `python -m tests.fakes.s3` doesn't load s3.py twice.
    if name == "S3Server":
        from tests.fakes.s3 import S3Server

        return S3Server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
