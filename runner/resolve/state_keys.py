"""A step's state encryption keys, read from the environment or mounted files named by
`state.encryption`, and masked from the moment they are read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from runner.base.errors import InvalidError, Problem
from runner.base.source import PathKey
from runner.platform.masking import session_masker
from runner.state.encryption import KEY_BYTES, Keys, StateKey
from runner.stepfile.model import Encryption, KeySource, Step


class ReadKeys(NamedTuple):
    keys: Keys | None  # None when no key could be read
    problems: list[Problem]  # keys that must be there and can't be read: exit 2 for a run
    # Fallback keys that are not there (unset, empty, no such file): a run goes on without
    # them and says so; a state sealed with one of them then fails to open (exit 3, its key id).
    absent: list[Problem]


def read_keys(step: Step, environ: Mapping[str, str]) -> Keys | None:
    """The step's encryption keys, masked from here on; InvalidError (exit 2) naming the
    source of a key that is missing or not base64 of 32 bytes, never the key. A fallback key
    that is not there is left out."""
    keys, problems, _ = readable_keys(step, environ)
    if problems:
        raise InvalidError(*problems)
    return keys


def readable_keys(step: Step, environ: Mapping[str, str]) -> ReadKeys:
    """The keys that can be read, a problem for each required one that can't, and a note for
    each fallback key that is not there: `runner state show` opens a state with what it has,
    and says what it lacks."""
    spec: Encryption | None = step.state.encryption
    if spec is None:
        return ReadKeys(None, [], [])
    problems: list[Problem] = []
    absent: list[Problem] = []
    path: PathKey = ("spec", "state", "encryption")
    found = []
    key = _read_key(step, spec.key, (*path, "key"), environ, problems)
    if key is not None:
        found.append(key)
    for i, source in enumerate(spec.fallback_keys):
        where = (*path, "fallbackKeys", i)
        if (key := _read_key(step, source, where, environ, problems, absent)) is not None:
            found.append(key)
    if not found:
        return ReadKeys(None, problems, absent)
    return ReadKeys(Keys(found[0], tuple(found[1:]), spec.allow_plaintext), problems, absent)


def _read_key(
    step: Step,
    source: KeySource,
    path: tuple[str | int, ...],
    environ: Mapping[str, str],
    problems: list[Problem],
    absent: list[Problem] | None = None,
) -> StateKey | None:
    """The key from `source`; None with a problem on `problems` when it can't be read, or,
    given `absent` (for a fallback key), on it when it is not there (unset, empty, no file)."""
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
        if absent is not None:  # a fallback: only a state sealed with it needs it
            absent.append(
                step.document.problem(
                    path,
                    f"state encryption fallback key: {where} {state}: going on without it "
                    "(a state sealed with it will not open)",
                )
            )
            return None
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
