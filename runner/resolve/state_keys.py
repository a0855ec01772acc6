"""A step's state encryption keys, read from the environment or mounted files named by
`state.encryption`, and masked from the moment they are read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path

from runner.base.errors import InvalidError, Problem
from runner.base.source import PathKey
from runner.platform.masking import session_masker
from runner.state.encryption import KEY_BYTES, Keys, StateKey
from runner.stepfile.model import Encryption, KeySource, Step


def read_keys(step: Step, environ: Mapping[str, str]) -> Keys | None:
    """The step's encryption keys, masked from here on; InvalidError (exit 2) naming the
    source of a key that is missing or not base64 of 32 bytes, never the key."""
    keys, problems = readable_keys(step, environ)
    if problems:
        raise InvalidError(*problems)
    return keys


def readable_keys(step: Step, environ: Mapping[str, str]) -> tuple[Keys | None, list[Problem]]:
    """The keys that can be read, and a problem for each that can't: `runner state show`
    opens a state with what it has, and says what it lacks."""
    spec: Encryption | None = step.state.encryption
    if spec is None:
        return None, []
    problems: list[Problem] = []
    path: PathKey = ("spec", "state", "encryption")
    sources: list[tuple[PathKey, KeySource]] = [((*path, "key"), spec.key)]
    sources += [((*path, "fallbackKeys", i), s) for i, s in enumerate(spec.fallback_keys)]
    found = [k for where, s in sources if (k := _read_key(step, s, where, environ, problems))]
    if not found:
        return None, problems
    return Keys(found[0], tuple(found[1:]), spec.allow_plaintext), problems


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
