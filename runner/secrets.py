"""Secret values from the container's environment or mounted files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from runner.errors import InvalidError, Problem
from runner.spec.model import Step


def resolve_secrets(step: Step, environ: Mapping[str, str]) -> dict[str, str]:
    """name -> value for every secret present; a missing required one stops the step."""
    values, problems = read_secrets(step, environ)
    if problems:
        raise InvalidError(*problems)
    return values


def read_secrets(step: Step, environ: Mapping[str, str]) -> tuple[dict[str, str], list[Problem]]:
    """The secrets that are present, and a Problem for each required one that is not."""
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for secret in step.secrets:
        path = ("spec", "secrets", secret.name)
        if secret.env is not None:
            value = environ.get(secret.env)
            if value is None:
                if secret.required:
                    problems.append(
                        step.document.problem(
                            path,
                            f"secret {secret.name}: environment variable {secret.env} is not set",
                            "set it in the Pipeline container's env, e.g. valueFrom.secretKeyRef",
                        )
                    )
                continue
        else:
            assert secret.file is not None
            try:
                value = Path(secret.file).read_text("utf-8").removesuffix("\n")
            except FileNotFoundError:
                if secret.required:
                    problems.append(
                        step.document.problem(
                            path,
                            f"secret {secret.name}: file {secret.file} does not exist",
                            "mount the Secret as a volume in the Pipeline container",
                        )
                    )
                continue
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                problems.append(
                    step.document.problem(
                        path, f"secret {secret.name}: cannot read {secret.file}: {reason}"
                    )
                )
                continue
        values[secret.name] = value
    return values, problems
