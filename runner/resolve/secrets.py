"""Secret values from the container's environment or mounted files, and new values for
generated secrets (kept in the step's state by runner/engine/state.py)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from runner.base.errors import InvalidError, Problem
from runner.stepfile.model import Generate, Secret, Step

_MISSING_HINTS = {
    "env": "set it in the Pipeline container's env, e.g. valueFrom.secretKeyRef",
    "file": "mount the Secret as a volume in the Pipeline container",
}


def resolve_secrets(step: Step, environ: Mapping[str, str]) -> dict[str, str]:
    """name -> value for every secret present; a missing or empty required one stops the step."""
    values, problems = read_secrets(step, environ)
    if problems:
        raise InvalidError(*problems)
    return values


def read_secrets(step: Step, environ: Mapping[str, str]) -> tuple[dict[str, str], list[Problem]]:
    """The secrets that are present, and a Problem for each required one that is missing or
    empty (unless it allows empty) and each that can't be read.

    An empty optional secret is taken as absent, as if it were not set: an empty token or CA
    bundle passed on is rarely what was meant, and tools treat unset and empty differently.
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for secret in step.secrets:
        if secret.generate is not None:
            continue  # made or restored with the step's state (runner/engine/state.py)
        path = ("spec", "secrets", secret.name)
        source = _source(secret)
        value, unreadable = _read(secret, environ)
        if unreadable is not None:
            problems.append(
                step.document.problem(
                    path, f"secret {secret.name}: cannot read {source}: {unreadable}"
                )
            )
            continue
        if value is None:
            if secret.required:
                state = "is not set" if secret.env is not None else "does not exist"
                problems.append(
                    step.document.problem(
                        path,
                        f"secret {secret.name}: {source} {state}",
                        _MISSING_HINTS["env" if secret.env is not None else "file"],
                    )
                )
            continue
        if not value and not secret.allow_empty:
            if secret.required:
                problems.append(
                    step.document.problem(
                        path,
                        f"secret {secret.name}: {source} is empty",
                        'give it a value, or add "allowEmpty: true" to the secret if empty is '
                        "a valid value",
                    )
                )
            continue
        values[secret.name] = value
    return values, problems


def _source(secret: Secret) -> str:
    return f"environment variable {secret.env}" if secret.env is not None else f"file {secret.file}"


def _read(secret: Secret, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The secret's value (None when missing), or why it can't be read."""
    if secret.env is not None:
        return environ.get(secret.env), None
    assert secret.file is not None
    try:
        return Path(secret.file).read_text("utf-8").removesuffix("\n"), None
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, getattr(exc, "strerror", None) or "not UTF-8 text"


def make_secret(generate: Generate) -> str:
    """A new value for a generated secret: `length` characters drawn uniformly from `charset`
    by the operating system's CSPRNG (`secrets`)."""
    alphabet = "".join(sorted(set(generate.charset)))  # a repeated character is not likelier
    return "".join(secrets.choice(alphabet) for _ in range(generate.length))
