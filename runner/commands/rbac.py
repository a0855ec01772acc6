"""`runner rbac [STEP...]`: the Pipeline `rbac.permissions` the steps' state stores need."""

from __future__ import annotations

import argparse
import sys

from runner.commands.common import named_steps
from runner.spec.loader import default_steps_dir, load_steps
from runner.spec.model import Step

# Exactly the verbs the stores use: read, create, update with resourceVersion, and delete
# (old chunks of a large state, `onDelete: remove`, `runner state rm`); `list` finds chunks
# left by a save that was killed half way. Leases are never listed.
STORE_VERBS = ["get", "list", "create", "update", "delete"]
LEASE_VERBS = ["get", "create", "update", "delete"]
_RESOURCES = {"configmap": ("", "configmaps"), "secret": ("", "secrets")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="STEP", help="steps (default: all)")


def permissions(steps: list[Step]) -> list[dict[str, object]]:
    """One entry per resource (and namespace) the steps' stores touch, in a stable order.

    Without `resourceNamespace` an entry grants the pipeline's own namespace, where state lives
    by default; a step whose `state.namespace` is a fixed name gets an entry for that namespace.
    """
    needed: dict[tuple[str, str, str | None], None] = {}
    for step in steps:
        # A step without `store:` uses a ConfigMap inside a cluster, where Pipelines run.
        store = step.state.store or "configmap"
        if not step.state.files or store not in _RESOURCES:
            continue
        namespace = step.state.namespace if _fixed(step.state.namespace) else None
        needed[(*_RESOURCES[store], namespace)] = None
        if step.state.lock:
            needed[("coordination.k8s.io", "leases", namespace)] = None
    order = ["configmaps", "secrets", "leases"]
    entries: list[dict[str, object]] = []
    for group, resource, namespace in sorted(needed, key=lambda k: (k[2] or "", order.index(k[1]))):
        entry: dict[str, object] = {
            "apiGroups": [group],
            "verbs": list(LEASE_VERBS if resource == "leases" else STORE_VERBS),
            "resources": [resource],
        }
        if namespace:
            entry["resourceNamespace"] = namespace
        entries.append(entry)
    return entries


def _fixed(namespace: str | None) -> bool:
    return bool(namespace) and "${{" not in (namespace or "")


def main(args: argparse.Namespace) -> int:
    loaded = load_steps([default_steps_dir(args.steps_dir)], trust_stamp=True)
    loaded.raise_for_problems()
    steps = named_steps(loaded.steps, args.names) if args.names else loaded.steps
    entries = permissions(steps)
    out = sys.stdout
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
