r"""The names a step may read, and what `validate` says about one it may not.

Templates (`${{ values.replicas }}`) and expressions (`values.replicas > \`1\``) read the same
names, so one function checks both. What is visible depends on where the name is used, in the
order a step runs: inputs, then values (each sees the earlier ones), the step's `if`, the
commands, then outputs, then manifests, destinations, status and waitFor/suspend.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from runner.base.words import closest

# Every `${{ kratix.* }}` name a template may use (docs/step-format.md, "Templates").
KRATIX_NAMES = frozenset(
    {
        "kratix.action", "kratix.workflow", "kratix.promise", "kratix.pipeline",
        "kratix.object.kind", "kratix.object.group", "kratix.object.version",
        "kratix.object.name", "kratix.object.namespace",
        "kratix.dirs.input", "kratix.dirs.output", "kratix.dirs.metadata",
        "kratix.crdPlural", "kratix.clusterScoped", "kratix.dryRun",
    }
)  # fmt: skip
# An expression may also read a group of them as a mapping (`kratix.object`).
_KRATIX_GROUPS = frozenset({"kratix", "kratix.object", "kratix.dirs"})
# The names of one item in a forEach entry (runner/language/foreach.py).
ITEM_NAMES = ["item", "index"]


@dataclass(frozen=True)
class Scope:
    """The names visible at one place of a step."""

    step: str  # the step's own name: `steps.<it>` is a mistake for `outputs.`
    inputs: frozenset[str]
    secrets: frozenset[str]
    values: frozenset[str]  # those visible here: a value sees only the ones before it
    outputs: frozenset[str]  # those declared; readable only after the commands
    after: bool = False  # read after the commands: outputs exist
    item: bool = False  # inside a forEach entry: `item` and `index` exist

    def with_values(self, values: frozenset[str]) -> Scope:
        return replace(self, values=values)

    def with_item(self) -> Scope:
        return replace(self, item=True)

    def after_commands(self, *, outputs: frozenset[str] | None = None) -> Scope:
        """The scope of the results; `outputs`: only these are readable (an output's own
        expression sees the ones before it)."""
        if outputs is not None:
            return replace(self, after=True, outputs=outputs)
        return replace(self, after=True)


Problem = tuple[str, str | None]  # message, hint


def name_problem(parts: tuple[str, ...], scope: Scope, *, template: bool) -> Problem | None:
    """What is wrong with reading `parts` here, or None.

    A template names one value (`${{ inputs.name }}`); an expression may also read a whole
    group (`keys(inputs)`, `kratix.object`).
    """
    root = parts[0]
    shown = ".".join(parts)
    if root in ("inputs", "values", "outputs"):
        where = f" in ${{{{ {shown} }}}}" if template else ""
        return _declared_problem(shown, where, parts, scope, whole=not template)
    if root == "kratix":
        if shown in KRATIX_NAMES or (not template and shown in _KRATIX_GROUPS):
            return None
        guess = closest(shown, KRATIX_NAMES)
        return (
            f'unknown name "{shown}"',
            f'did you mean "{guess}"?' if guess else "known: " + ", ".join(sorted(KRATIX_NAMES)),
        )
    if root == "steps":
        return _steps_problem(parts, scope)
    if root in ITEM_NAMES:
        return _item_problem(parts, scope)
    if root == "secrets":
        return secret_problem(parts[1] if len(parts) > 1 else "NAME")
    if len(parts) == 1 and root in scope.secrets:
        return secret_problem(root)
    if len(parts) == 1 and root in ("null", "true", "false") and not template:
        return (
            f'"{root}" is read as a name here, not as the value {root}',
            f"write `{root}` (in backticks): a JSON literal",
        )
    for group, names in (("inputs", scope.inputs), ("values", scope.values)):
        if root in names:
            return f'unknown name "{shown}"', f'did you mean "{group}.{shown}"?'
    roots = ["inputs", "values", "kratix", "steps"]
    if scope.after:
        roots.insert(2, "outputs")
    if scope.item:
        roots[:0] = ITEM_NAMES
    guess = closest(root, set(roots))
    return (
        f'unknown name "{shown}": names start with {", ".join(roots[:-1])} or {roots[-1]}',
        f'did you mean "{guess}"?' if guess else None,
    )


def _declared_problem(
    shown: str, where: str, parts: tuple[str, ...], scope: Scope, *, whole: bool
) -> Problem | None:
    root = parts[0]
    kind = root[:-1]  # input, value, output
    if root == "outputs" and not scope.after:
        return (
            f'"{shown}": outputs are read after the commands, not here',
            "outputs work in manifests, destinations, status, waitFor and suspend",
        )
    declared = {"inputs": scope.inputs, "values": scope.values, "outputs": scope.outputs}[root]
    if len(parts) < 2:
        return None if whole else (f'"{shown}" names no {kind}', _listing(kind, declared))
    name = parts[1]
    if name in declared:
        return None
    if root == "inputs" and name in scope.secrets:
        return secret_problem(name)
    guess = closest(name, declared)
    if guess:
        return f'unknown {kind} "{name}"{where}', f'did you mean "{root}.{guess}"?'
    return f'unknown {kind} "{name}"{where}', _listing(kind, declared)


def _item_problem(parts: tuple[str, ...], scope: Scope) -> Problem | None:
    shown = ".".join(parts)
    if not scope.item:
        return (
            f'"{shown}" is read outside a forEach entry',
            "item and index are the current element and its position in a value or manifest "
            "with forEach:",
        )
    if parts[0] == "index" and len(parts) > 1:
        return f'"{shown}": index is a number (0, 1, ...)', "write index"
    return None


def _steps_problem(parts: tuple[str, ...], scope: Scope) -> Problem | None:
    if len(parts) < 4 or parts[2] != "outputs":
        return (
            f'"{".".join(parts)}" is not a step output',
            "write steps.STEP.outputs.NAME",
        )
    if parts[1] == scope.step:
        return (
            f'"{".".join(parts)}" is this step\'s own output',
            f'write "outputs.{parts[3]}"',
        )
    return None  # checked across files, once every step is known (stepfile/references.py)


def secret_problem(name: str) -> Problem:
    return (
        f'secrets are never templated (found "{name}")',
        f'commands get the secret as the environment variable {name}; a script can use "${name}"',
    )


def _listing(kind: str, declared: frozenset[str]) -> str:
    if not declared:
        return f"no {kind}s are declared"
    return f"declared {kind}s: " + ", ".join(sorted(declared))
