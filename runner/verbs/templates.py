"""`runner templates`: the StepTemplates in the steps folder, their params and their users."""

from __future__ import annotations

import argparse
import json
from typing import Any

from runner.language.interpolation import as_text
from runner.platform.environment import Environment
from runner.stepfile.loader import default_steps_dir, load_steps
from runner.stepfile.step_template_library import Template, builtin_templates, is_builtin
from runner.stepfile.step_templates import param_input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["text", "json"], default="text", help="json: for tools"
    )


def main(args: argparse.Namespace, env: Environment) -> int:
    loaded = load_steps([default_steps_dir(args.steps_dir, env.environ)], trust_stamp=True)
    loaded.raise_for_problems()
    own = {t.name for t in loaded.templates}
    templates = [*loaded.templates, *(t for t in builtin_templates() if t.name not in own)]
    listed = [
        describe(t, [s.name for s in loaded.steps if t.name in s.templates]) for t in templates
    ]
    if args.format == "json":
        json.dump(listed, env.stdout, indent=2)
        env.stdout.write("\n")
        return 0
    for entry in listed:
        env.stdout.write(_text(entry))
    return 0


def describe(template: Template, users: list[str]) -> dict[str, Any]:
    """A template as `runner templates` shows it."""
    metadata = template.doc.value.get("metadata", {})
    params = []
    for name, raw in template.params.items():
        param = param_input(name, raw)
        entry: dict[str, Any] = {"name": name, "type": param.type, "required": param.required}
        raw = raw if isinstance(raw, dict) else {}
        for key in ("default", "enum", "pattern", "description"):
            if key in raw:
                entry[key] = raw[key]
        params.append(entry)
    return {
        "name": template.name,
        "file": template.doc.file,
        "builtin": is_builtin(template.file),
        "line": template.doc.position(("metadata", "name"))[0],
        "description": metadata.get("description", ""),
        "uses": template.spec.get("uses"),
        "params": params,
        "usedBy": users,
    }


def _text(entry: dict[str, Any]) -> str:
    where = "built in" if entry["builtin"] else f"{entry['file']}:{entry['line']}"
    lines = [f"{entry['name']}  ({where})"]
    if entry["description"]:
        lines.append(f"  {entry['description']}")
    if entry["uses"]:
        lines.append(f"  uses: {entry['uses']}")
    if entry["params"]:
        lines.append("  params:")
        width = max(len(p["name"]) for p in entry["params"])
        for param in entry["params"]:
            facts = [param["type"] or "any type"]
            if "default" in param:
                facts.append(f"default {json.dumps(param['default'], default=as_text)}")
            elif param["required"]:
                facts.append("required")
            else:
                facts.append("optional")
            if "enum" in param:
                facts.append(
                    "one of " + ", ".join(json.dumps(v, default=as_text) for v in param["enum"])
                )
            if "pattern" in param:
                facts.append(f"matching {param['pattern']}")
            line = f"    {param['name']:<{width}}  {', '.join(facts)}"
            if param.get("description"):
                line += f"  ({param['description']})"
            lines.append(line)
    lines.append("  used by: " + (", ".join(entry["usedBy"]) or "no step"))
    return "\n".join(lines) + "\n\n"
