"""Which of a step's values and outputs are sensitive: marked so, or built from one that is.

A value that reads a sensitive output (`jmespath: to_yaml(steps.db.outputs.password)`) holds the
secret in another form; so does an output computed from it. Sensitivity therefore flows along
what each value and output reads, known statically from the names in its expression. Within a
step that is decided here; through `steps.X.outputs.Y` it depends on step X, so those reads are
kept and decided once every step is known (`validate`) or from what X recorded (a run).

Sensitive names may reach commands only through `env` and `stdin:`; `validate` refuses them in
argv, paths, names and everything written (manifests, destinations, status, messages), and a
run masks their values like secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# What a template's text becomes, which decides whether a sensitive name may be read there:
# only a command's environment and standard input keep it out of logs and files.
ARGV, ENV, STDIN, NAME, WRITTEN = "argv", "env", "stdin", "name", "written"
OPEN_SINKS = frozenset({ENV, STDIN})
# Why a sensitive name may not go to each other kind of place, and what to do instead.
SINK_REASONS = {
    ARGV: (
        "argv is logged and visible to every process",
        "pass it to the command in env: or stdin:",
    ),
    NAME: ("a path or a name is logged", "pass it to the commands in env: or stdin:"),
    WRITTEN: (
        "it would be written to a file",
        'read it in a command\'s env: or stdin:, or drop "sensitive: true" where it is made',
    ),
}

ANY = "*"  # a read of a whole group: every output of a step (`steps.db.outputs`), every step

StepOutput = tuple[str, str]  # (step, output), either may be ANY


@dataclass(frozen=True)
class Taint:
    """What makes each value and output of one step sensitive.

    Keys are "values.NAME" and "outputs.NAME". `local`: those sensitive whatever other steps
    do, with the marked output they come from. `via`: the other steps' outputs each reads,
    directly or through earlier values and outputs; it is sensitive if one of them is.
    """

    local: Mapping[str, str] = field(default_factory=dict)
    via: Mapping[str, frozenset[StepOutput]] = field(default_factory=dict)

    def of(self, parts: tuple[str, ...]) -> tuple[str | None, frozenset[StepOutput]]:
        """For a name read somewhere: the local sensitive source it reads (or None), and the
        step outputs it depends on."""
        return _read(parts, self.local, self.via)

    def sensitive(self, recorded: Mapping[str, Iterable[str]]) -> set[str]:
        """The keys sensitive in a run, given the outputs each earlier step marked sensitive."""
        return set(self.local) | {
            key for key, reads in self.via.items() if any(marks(recorded, r) for r in reads)
        }


def marks(sensitive: Mapping[str, Iterable[str]], read: StepOutput) -> bool:
    """Whether a read of `read` touches an output that `sensitive` (step -> names) marks."""
    step, output = read
    steps = sensitive.values() if step == ANY else [sensitive.get(step, ())]
    return any((output == ANY and bool(list(names))) or output in names for names in steps)


def step_taint(spec: Mapping[str, Any]) -> Taint:
    """The taint of a step spec (raw: any shape; what is malformed is validate's to report)."""
    local: dict[str, str] = {}
    via: dict[str, frozenset[StepOutput]] = {}
    for group in ("values", "outputs"):
        entries = spec.get(group)
        for name, raw in entries.items() if isinstance(entries, dict) else ():
            if not isinstance(raw, dict):
                continue
            key = f"{group}.{name}"
            if group == "outputs" and raw.get("sensitive") is True:
                local[key] = key
            sources: set[StepOutput] = set()
            for parts in _names_read(raw, group):
                source, reads = _read(parts, local, via)
                if source is not None:
                    local.setdefault(key, source)
                sources |= reads
            if sources:
                via[key] = frozenset(sources)
    return Taint(local, via)


def _read(
    parts: tuple[str, ...], local: Mapping[str, str], via: Mapping[str, frozenset[StepOutput]]
) -> tuple[str | None, frozenset[StepOutput]]:
    root = parts[0]
    if root in ("values", "outputs"):
        if len(parts) == 1:  # the whole group (`keys(values)`, `to_yaml(outputs)`)
            keys = [k for k in (*local, *via) if k.startswith(root + ".")]
        else:
            keys = [f"{root}.{parts[1]}"]
        source = next((local[k] for k in keys if k in local), None)
        return source, frozenset().union(*(via.get(k, frozenset()) for k in keys))
    if root == "steps":
        step = parts[1] if len(parts) > 1 else ANY
        output = parts[3] if len(parts) > 3 and parts[2] == "outputs" else ANY
        return None, frozenset({(step, output)})
    return None, frozenset()


def _names_read(raw: Mapping[str, Any], group: str) -> list[tuple[str, ...]]:
    """The names a value's or output's definition reads (a file read reads none)."""
    if group == "values" and isinstance(raw.get("forEach"), str):  # each item is read
        return [
            *_names_read({k: v for k, v in raw.items() if k != "forEach"}, group),
            *_names_read({"jmespath": raw["forEach"]}, group),
        ]
    if group == "values" and isinstance(raw.get("from"), str):
        return [tuple(raw["from"].split("."))]
    expression = raw.get("jmespath")
    if not isinstance(expression, str) or (group == "outputs" and "file" in raw):
        return []
    from runner.language.expressions import ExpressionError, compile_expression

    try:
        compiled = compile_expression(expression)
    except ExpressionError:
        return []  # validate reports it
    if compiled.reads_whole:  # `@`, `*.x`, `values(@)`: it may reach any name
        return [("values",), ("outputs",), ("steps",)]
    return [name.path for name in compiled.names()]


def sensitive_outputs(
    taints: Mapping[str, Taint], declared: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """Each step's sensitive outputs, following reads across steps until nothing changes."""
    found = {
        step: frozenset(k.split(".", 1)[1] for k in taint.local if k.startswith("outputs."))
        for step, taint in taints.items()
    }
    changed = True
    while changed:
        changed = False
        for step, taint in taints.items():
            more = {
                key.split(".", 1)[1]
                for key, reads in taint.via.items()
                if key.startswith("outputs.") and any(marks(found, r) for r in reads)
            }
            if not more <= found[step]:
                found[step] = found[step] | more
                changed = True
    return {step: found.get(step, frozenset()) & declared.get(step, frozenset()) for step in found}
