"""`runner rbac [STEP...]`: the Pipeline `rbac.permissions` the steps' state stores need."""

from __future__ import annotations

import argparse

from runner.engine.selection import named_steps
from runner.platform.environment import Environment
from runner.state import IN_CLUSTER, NONE, kinds, store_class
from runner.state.base import RbacRule
from runner.stepfile.loader import default_steps_dir
from runner.stepfile.model import Step
from runner.verbs.common import load_needed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="STEP", help="steps (default: all)")


def permissions(steps: list[Step]) -> list[dict[str, object]]:
    """One entry per resource (and namespace) the steps' stores touch, in a stable order.

    Without `resourceNamespace` an entry grants the pipeline's own namespace, where state lives
    by default; a step whose `state.namespace` is a fixed name gets an entry for that namespace.
    """
    # (group, resource, namespace) -> verbs, and the order the entries are printed in
    needed: dict[tuple[str, str, str | None], list[str]] = {}
    order: dict[tuple[str, str, str | None], tuple[str, bool, int]] = {}
    for step in steps:
        # A step without `store:` uses the in-cluster default: that is where Pipelines run.
        kind = step.state.store or IN_CLUSTER
        if not step.keeps_state or kind == NONE:
            continue
        namespace = step.state.namespace if _fixed(step.state.namespace) else None
        rule: RbacRule
        for rule in store_class(kind).rbac_rules(step.state.lock):
            key = (rule.api_group, rule.resource, namespace)
            verbs = needed.setdefault(key, [])
            verbs += [v for v in rule.verbs if v not in verbs]
            # State objects in store order, then the locks' objects, per namespace.
            order.setdefault(key, (namespace or "", rule.for_lock, kinds().index(kind)))
    entries: list[dict[str, object]] = []
    for key in sorted(needed, key=order.__getitem__):
        group, resource, namespace = key
        entry: dict[str, object] = {
            "apiGroups": [group],
            "verbs": needed[key],
            "resources": [resource],
        }
        if namespace:
            entry["resourceNamespace"] = namespace
        entries.append(entry)
    return entries


def _fixed(namespace: str | None) -> bool:
    return bool(namespace) and "${{" not in (namespace or "")


def main(args: argparse.Namespace, env: Environment) -> int:
    loaded = load_needed(default_steps_dir(args.steps_dir, env.environ), args.names)
    loaded.raise_for_problems()
    steps = named_steps(loaded.steps, args.names, loaded.templates) if args.names else loaded.steps
    entries = permissions(steps)
    out = env.stdout
    out.write(f"# rbac.permissions for a Pipeline running: {', '.join(s.name for s in steps)}\n")
    out.write(
        "# (granted in the pipeline's namespace: the request's, or the Promise's\n"
        "#  workflows.config.pipelineNamespace; state.namespace names another)\n"
    )
    templated = [s.name for s in steps if s.state.namespace and not _fixed(s.state.namespace)]
    if templated:
        out.write(
            f"# {', '.join(templated)}: state.namespace is a template; add resourceNamespace "
            "to the entries if it renders to another namespace than the pipeline's\n"
        )
    if not entries:
        out.write("# these steps keep no state in the cluster: no permissions needed\n")
        return 0
    out.write("rbac:\n  permissions:\n")
    for entry in entries:
        group = entry["apiGroups"][0]  # type: ignore[index]
        out.write(
            f'    - apiGroups: ["{group}"]\n' if not group else f"    - apiGroups: [{group}]\n"
        )
        out.write(f"      verbs: [{', '.join(entry['verbs'])}]\n")  # type: ignore[arg-type]
        out.write(f"      resources: [{entry['resources'][0]}]\n")  # type: ignore[index]
        if "resourceNamespace" in entry:
            out.write(f"      resourceNamespace: {entry['resourceNamespace']}\n")
    return 0
