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
    """One entry per resource the steps' stores touch, in a stable order."""
    needed: dict[tuple[str, str], None] = {}
    for step in steps:
        # A step without `store:` uses a ConfigMap inside a cluster, where Pipelines run.
        store = step.state.store or "configmap"
        if not step.state.files or store not in _RESOURCES:
            continue
        needed[_RESOURCES[store]] = None
        if step.state.lock:
            needed[("coordination.k8s.io", "leases")] = None
    order = ["configmaps", "secrets", "leases"]
    return [
        {
            "apiGroups": [group],
            "verbs": list(LEASE_VERBS if resource == "leases" else STORE_VERBS),
            "resources": [resource],
        }
        for group, resource in sorted(needed, key=lambda k: order.index(k[1]))
    ]


def main(args: argparse.Namespace) -> int:
    loaded = load_steps([default_steps_dir(args.steps_dir)], trust_stamp=True)
    loaded.raise_for_problems()
    steps = named_steps(loaded.steps, args.names) if args.names else loaded.steps
    entries = permissions(steps)
    out = sys.stdout
    out.write(f"# rbac.permissions for a Pipeline running: {', '.join(s.name for s in steps)}\n")
    out.write(
        "# (state in another namespace than the request's: add resourceNamespace to each entry)\n"
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
    return 0
