"""A step's state encryption keys, read from the environment or mounted files named by
`state.encryption`, and masked from the moment they are read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path

from runner.base.errors import InvalidError, Problem
from runner.platform.masking import session_masker
from runner.state.encryption import KEY_BYTES, Keys, StateKey
from runner.stepfile.model import Encryption, KeySource, Step


def read_keys(step: Step, environ: Mapping[str, str]) -> Keys | None:
    """The step's encryption keys, masked from here on; InvalidError (exit 2) naming the
    source of a key that is missing or not base64 of 32 bytes, never the key."""
    spec: Encryption | None = step.state.encryption
    if spec is None:
        return None
    problems: list[Problem] = []
    path = ("spec", "state", "encryption")
    write = _read_key(step, spec.key, (*path, "key"), environ, problems)
    fallbacks = [
        _read_key(step, source, (*path, "fallbackKeys", i), environ, problems)
        for i, source in enumerate(spec.fallback_keys)
    ]
    if problems:
        raise InvalidError(*problems)
    assert write is not None
    return Keys(write, tuple(k for k in fallbacks if k is not None), spec.allow_plaintext)


def _read_key(
    step: Step,
    source: KeySource,
    path: tuple[str | int, ...],
    environ: Mapping[str, str],
    problems: list[Problem],
) -> StateKey | None:
    where = source.describe()
    if source.env is not None:
        text = environ.get(source.env)
    else:
        assert source.file is not None
        try:
            text = Path(source.file).read_text("utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            problems.append(
                step.document.problem(path, f"state key: cannot read {where}: {reason}")
            )
            return None
    if text is None or not text.strip():
        state = "is not set" if source.env is not None else "does not exist"
        state = state if text is None else "is empty"
        problems.append(
            step.document.problem(
                path,
                f"state encryption key: {where} {state}",
                "make one with: head -c 32 /dev/urandom | base64",
            )
        )
        return None
    session_masker().add("a state encryption key", text.strip())
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) != KEY_BYTES:
        problems.append(
            step.document.problem(
                path,
                f"state encryption key from {where} is not base64 of {KEY_BYTES} bytes",
                "make one with: head -c 32 /dev/urandom | base64",
            )
        )
        return None
    return StateKey(secret, where)
