"""A pipeline's world on disk for in-process session tests: step files, Kratix's folders, a
request, and a Session opened on them with the local store."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import yaml

from runner.engine.session import Session
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger
from runner.state import StoreSpec
from runner.stepfile.loader import load_steps


def write_steps(tmp: Path, steps: dict[str, str]) -> Path:
    """The steps folder: {"10-name": spec body}, the step named after the part past the dash.
    Written again over what an earlier call wrote (a test may run twice)."""
    folder = tmp / "steps.d"
    folder.mkdir(exist_ok=True)
    for name, body in steps.items():
        text = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
        (folder / f"{name}.yaml").write_text(
            "apiVersion: runner.kratix.dev/v1alpha1\nkind: Step\n"
            f"metadata: {{name: {name.split('-', 1)[1]}}}\nspec:\n{text}\n"
        )
    return folder


def open_session(
    tmp: Path,
    steps: dict[str, str],
    spec: dict[str, Any] | None = None,
    *,
    select: tuple[str, ...] = (),
    namespace: str = "default",
    store: StoreSpec | str | None = "local",
    preview: bool = False,
    log: Logger | None = None,
    **env: str,
) -> Session:
    """A Session on `steps` (see write_steps) for a request of `spec` in `namespace`.
    `select`: the steps named on the command line (none: all); `store`: the override (the
    default: a local store under `tmp`); `env`: more of the container's environment."""
    folder = write_steps(tmp, steps)
    for sub in ("input", "output", "metadata", "work"):
        (tmp / sub).mkdir(exist_ok=True)
    request = {"apiVersion": "x/v1", "kind": "App",
               "metadata": {"name": "my-app", "namespace": namespace}, "spec": spec or {}}  # fmt: skip
    (tmp / "input" / "object.yaml").write_text(yaml.safe_dump(request, sort_keys=False))
    environ = {"PATH": "/usr/bin:/bin", "KRATIX_WORKFLOW_TYPE": "resource",
               "KRATIX_WORKFLOW_ACTION": "configure", **env}  # fmt: skip
    loaded = load_steps([folder])
    assert not loaded.problems, loaded.problems
    ctx = KratixContext.from_environment(
        environ, str(tmp / "input"), str(tmp / "output"), str(tmp / "metadata")
    )
    log = log or Logger(stream=io.StringIO(), out=io.StringIO())
    if store == "local":
        store = StoreSpec("local", str(tmp / "state"))
    return Session.open(loaded.steps, list(select), ctx, environ, log, store, preview=preview)
