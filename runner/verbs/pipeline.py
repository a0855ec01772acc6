"""`runner pipeline [STEP...] --image IMAGE`: the Kratix Pipeline that runs the steps.

A Promise author would otherwise copy each step's secrets into `env` entries and `runner rbac`'s
output into `rbac.permissions` by hand, and the two drift apart when a step changes; printing
the Pipeline from the steps keeps the Promise in step with the image's steps.d.
"""

from __future__ import annotations

import argparse
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.engine.selection import named_steps, select_steps
from runner.platform.environment import Environment
from runner.platform.kratix import KratixContext
from runner.platform.log import Logger
from runner.stepfile.loader import default_steps_dir
from runner.stepfile.model import Step
from runner.verbs.common import load_needed
from runner.verbs.rbac import permissions

API_VERSION = "platform.kratix.io/v1alpha1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="STEP",
        help="steps, one container each, in this order (default: those whose `on` matches "
        "the Kratix environment)",
    )
    parser.add_argument("--image", required=True, help="the pipeline image holding the steps")
    parser.add_argument("--name", help="the Pipeline's metadata.name (default: the first step's)")


def main(args: argparse.Namespace, env: Environment) -> int:
    import yaml

    loaded = load_needed(default_steps_dir(args.steps_dir, env.environ), args.names, env.environ)
    loaded.raise_for_problems()
    log = Logger(args.log_format, stream=env.stderr, out=env.stdout)
    if args.names:
        steps = named_steps(loaded.steps, args.names, loaded.templates)
    else:
        ctx = KratixContext.from_environment(env.environ)
        steps = select_steps(loaded.steps, [], ctx, log)
    if not steps:
        raise InvalidError(
            Problem(
                "no steps for the Pipeline",
                hint="name the steps, or set KRATIX_WORKFLOW_TYPE/KRATIX_WORKFLOW_ACTION/"
                "KRATIX_PROMISE_NAME to the workflow the Pipeline is for",
            )
        )
    document = pipeline(steps, args.image, args.name or steps[0].name, log)
    env.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120))
    return 0


def pipeline(steps: list[Step], image: str, name: str, log: Logger) -> dict[str, Any]:
    """The Pipeline document: one container per step, then what `runner rbac` grants them."""
    spec: dict[str, Any] = {"containers": [container(step, image, log) for step in steps]}
    rules = permissions(steps)
    if rules:
        spec["rbac"] = {"permissions": rules}
    return {"apiVersion": API_VERSION, "kind": "Pipeline", "metadata": {"name": name}, "spec": spec}


def container(step: Step, image: str, log: Logger) -> dict[str, Any]:
    """`runner run STEP` in `image`, with an env var from a Secret for each secretKeyRef."""
    env: list[dict[str, Any]] = []
    for secret in step.secrets:
        ref = secret.secret_key_ref
        if ref is None:
            if secret.env:
                log.warning(
                    f"secret {secret.name} is read from ${secret.env} and names no "
                    f"secretKeyRef: give the container {secret.env} yourself",
                    step=step.name,
                )
            continue
        if secret.env is None:
            # A file needs a Secret volume and a mount; the env entry would not reach it.
            log.warning(
                f"secret {secret.name} is read from the file {secret.file}: mount Secret "
                f"{ref.name} (key {ref.key}) there with a volume; no env entry is made for it",
                step=step.name,
            )
            continue
        same = [item for item in env if item["name"] == secret.env]
        if same:  # two secrets read one variable: the container can set it once
            if secret.required:  # optional only if every secret reading it is
                same[0]["valueFrom"]["secretKeyRef"].pop("optional", None)
            continue
        key_ref: dict[str, Any] = {"name": ref.name, "key": ref.key}
        if not secret.required:
            # Else a missing Secret (or key) stops the pod before the runner starts
            # (CreateContainerConfigError): `required: false` would mean nothing.
            key_ref["optional"] = True
        env.append({"name": secret.env, "valueFrom": {"secretKeyRef": key_ref}})
    _warn_unset_store_env(step, {item["name"] for item in env}, log)
    entry: dict[str, Any] = {
        "name": step.name,
        "image": image,
        "command": ["runner", "run", step.name],
    }
    if env:
        entry["env"] = env
    return entry


def _warn_unset_store_env(step: Step, given: set[str], log: Logger) -> None:
    """Say which variables the step's store (AWS_* for s3) and encryption keys read that no
    secret of the step gives the container (by secretKeyRef): they must come from elsewhere."""
    from runner.state import STORES, store_class

    wanted: list[str] = []
    kind = step.state.store
    if step.keeps_state and kind in STORES:
        wanted += store_class(kind).environment
    encryption = step.state.encryption
    if step.keeps_state and encryption is not None:
        sources = (encryption.key, *encryption.fallback_keys)
        wanted += [source.env for source in sources if source.env]
    missing = [name for name in wanted if name not in given]
    if missing:
        log.warning(
            f"the state reads {', '.join(missing)}, which no secret of the step gives "
            "(secrets with env: and secretKeyRef: make them container env from a Secret): "
            "give the container them yourself where they are needed",
            step=step.name,
        )
