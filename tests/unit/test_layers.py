"""The package's layers, as docs/architecture.md draws them: each imports only the layers
below it, including imports made inside functions (which would hide a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "runner"

# Top to bottom. A module may import its own layer and any layer after it.
LAYERS = [
    "cli", "verbs", "cases", "engine", "resolve", "stepfile", "language", "state", "platform",
    "base",
]  # fmt: skip


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] == "__main__":
        return "cli"
    if len(parts) == 1 or parts[1] in ("__init__", "__version__"):
        return "base"  # the package itself holds only its version
    return parts[1]


def _imports() -> list[tuple[str, str, str]]:
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "runner":
                    targets = [f"runner.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "runner":
                    where = f"{file.relative_to(PACKAGE.parent)}:{node.lineno}"
                    found.append((where, module, target))
    return found


def test_every_module_is_in_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - {"cases", "verbs", "engine", "resolve", "stepfile", "language", "state",
                       "platform", "base"} == set()  # fmt: skip
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat == {"__init__", "__main__", "cli"}


def test_each_layer_imports_only_the_layers_below_it():
    upward = [
        f"{where}: {module} ({_layer(module)}) imports {target} ({_layer(target)})"
        for where, module, target in _imports()
        if LAYERS.index(_layer(target)) < LAYERS.index(_layer(module))
    ]
    assert upward == []


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [("runner.engine.session", "runner.verbs.run", False),
     ("runner.verbs.run", "runner.engine.session", True),
     ("runner.base.errors", "runner.platform.log", False)],
)  # fmt: skip
def test_the_rule_itself(module, target, allowed):
    assert (LAYERS.index(_layer(target)) >= LAYERS.index(_layer(module))) is allowed
