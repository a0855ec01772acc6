"""`KUBECONFIG` checked before the `kubernetes` package reads it, so that a wrong value is a
clear store error naming the file, not a crash inside the loader.

`KUBECONFIG` is a file or, as kubectl reads it, a list of files separated by ":"; files in the
list that don't exist are skipped, as kubectl skips them. Each file that exists must be a YAML
mapping (an empty file is allowed in a list, as kubectl allows it). The loader merges them.
"""

from __future__ import annotations

import os

from runner.base.errors import Problem, StoreError

_HINT = (
    "KUBECONFIG names a kubeconfig file, or several separated by ':'; inside a pod the service "
    "account is used; or keep state locally with --state-store local:DIR"
)


def kubeconfig_files(value: str) -> list[str]:
    """The files `value` (the variable's text) names that exist and are not empty, for the
    loader (which refuses an empty file); StoreError naming the file for one that can't be a
    kubeconfig, or when none is left."""
    import yaml

    named = [os.path.expanduser(part) for part in value.split(os.pathsep) if part]
    found: list[str] = []
    usable: list[str] = []
    for path in named:
        if not os.path.lexists(path):
            continue
        try:
            with open(path, "rb") as fh:
                text = fh.read(16 << 20).decode("utf-8")
        except IsADirectoryError:
            raise _unusable(path, "it is a folder") from None
        except OSError as exc:
            raise _unusable(path, exc.strerror or type(exc).__name__) from None
        except UnicodeDecodeError:
            raise _unusable(path, "it is not UTF-8 text") from None
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise _unusable(path, f"it is not valid YAML{where}") from None
        if config is None:
            found.append(path)
            continue
        if not isinstance(config, dict):
            raise _unusable(path, f"it holds a YAML {_kind(config)}, not a kubeconfig mapping")
        for field in ("clusters", "contexts", "users"):
            items = config.get(field)
            if items is not None and not (
                isinstance(items, list) and all(isinstance(item, dict) for item in items)
            ):
                raise _unusable(path, f'"{field}" is not a list of named entries')
        found.append(path)
        usable.append(path)
    if not found:
        listed = ", ".join(named) or "(empty)"
        raise StoreError(
            Problem(
                f"no Kubernetes configuration: KUBECONFIG names no file that exists ({listed})",
                hint=_HINT,
            )
        )
    if not usable:
        raise StoreError(
            Problem(
                f"no Kubernetes configuration: KUBECONFIG file {', '.join(found)} is empty",
                hint=_HINT,
            )
        )
    return usable


def _unusable(path: str, why: str) -> StoreError:
    return StoreError(
        Problem(f"KUBECONFIG file {path} is not a usable kubeconfig: {why}", hint=_HINT)
    )


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return type(value).__name__
