"""`runner plan [STEP...]`: what `run` would do for this request, running nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from runner.engine.manifest_sources import planned_output
from runner.engine.policy import SaveWhen, StatePolicy, commands_run
from runner.engine.session import Session
from runner.platform.environment import Environment
from runner.resolve.prepare import PreparedCommand, PreparedStep
from runner.state import describe_state, store_class
from runner.state.base import StateRef
from runner.stepfile.model import StatusFromFile
from runner.verbs.common import add_kratix_arguments, open_session
from runner.verbs.plan_results import after_commands, decided, outputs, results, retry, shown

WAITING = (
    "it reads outputs of these steps, which have recorded none yet: what reads them is shown "
    "as written and decided when the step runs"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="STEP", help="steps to plan (default: those whose `on` matches)"
    )
    add_kratix_arguments(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text")


def main(args: argparse.Namespace, env: Environment) -> int:
    session = open_session(args, args.names, env, preview=True)
    print_plan(session, env.stdout, args.format)
    return 0


def describe(prepared: PreparedStep, session: Session) -> dict[str, Any]:
    """The plan of one step; secret values are shown only as masked."""
    step = prepared.step
    dry_run = session.ctx.dry_run
    state: dict[str, Any] | None = None
    policy = StatePolicy.of(prepared, session.ctx)  # what the engine will do with the state
    saved: dict[SaveWhen, str] = {
        "always": "after the last command, also after a failure",
        "on-success": "after the last command if all succeeded",
        "never": "never: a dry run saves no state",
    }
    if policy is not None and prepared.state_ref is not None:
        ref = prepared.state_ref
        state = {"store": prepared.store, **_location(prepared.store, ref, session)}
        state |= {
            "files": {f.path: f.key for f in step.state.files},
            "restore": "before the first command"
            if prepared.commands
            else "before its outputs are read (no command runs)",
            "save": "removed after the step succeeds" if policy.remove else saved[policy.save],
            "lock": policy.lock,
        }
        if step.state.encryption is not None:
            state["encrypted"] = True
    commands_from = commands_run(dry_run)
    later = after_commands(prepared)
    return {
        "step": step.name,
        "file": step.document.file,
        "description": step.description,
        **({"templates": list(step.templates)} if step.templates else {}),
        "on": {
            "workflow": step.trigger.workflow or "any",
            "action": list(step.trigger.actions),
            "promise": _promise(step.trigger.promise),
        },
        "inputs": prepared.inputs,
        **({"values": prepared.values} if step.values else {}),
        **(
            {"waitsFor": sorted(prepared.waiting_for), "note": WAITING}
            if prepared.waiting_for
            else {}
        ),
        **(
            {
                "if": {
                    "expression": step.condition,
                    "holds": decided(step, step.condition, prepared.context, ("spec", "if")),
                }
            }
            if step.condition
            else {}
        ),
        "secrets": {
            **{
                s.name: "***" if s.mask else prepared.secrets[s.name]
                for s in step.secrets
                if s.name in prepared.secrets
            },
            # Never its value: the plan does not read the state; a run restores or makes it.
            **{
                s.name: f"generated ({s.generate.length} characters) on the first run, then "
                "kept in the step's state"
                for s in step.generated
                if s.generate is not None
            },
        },
        "env": prepared.env,
        **({"notExported": list(prepared.unexported)} if prepared.unexported else {}),
        "workdir": str(prepared.workdir) + (" (run in a copy)" if step.copy_workdir else ""),
        **({"commandsFrom": commands_from} if commands_from != "run" else {}),
        "commands": [
            {
                "run": c.argv if c.source.script is None else c.source.script,
                **({"cwd": c.cwd} if c.cwd != "." else {}),
                **({"timeout": c.timeout} if c.timeout else {}),
                **({"stdout": c.stdout} if c.stdout else {}),
                **({"echo": False} if not c.echo else {}),
                # Never its text: it is where secrets and sensitive outputs may go.
                **({"stdin": _stdin(c, prepared)} if c.source.stdin else {}),
                **({"env": c.env} if c.env else {}),
                **({"continueOnError": True} if c.continue_on_error else {}),
                **(
                    {"if": c.source.condition, "skipped": bool(c.skipped)}
                    if c.source.condition
                    else {}
                ),
                **({"retry": retry(c.source.retry)} if c.source.retry else {}),
            }
            for c in prepared.commands
        ],
        "state": state,
        "output": [
            planned_output(step, o, after_commands(prepared), session.ctx.output_dir, decided)
            for o in step.output
        ],
        **({"outputs": outputs(step)} if step.outputs else {}),
        **results(prepared, session.ctx, session.log.masker),
        "status": {
            k: (
                f"from {v.file} {v.expression}"
                if isinstance(v, StatusFromFile)
                else shown(v, later)
            )
            for k, v in step.status.items()
        },
        "timeout": step.timeout,
    }


def _location(kind: str, ref: StateRef, session: Session) -> dict[str, Any]:
    """Where a run keeps the state, as the run's log says it (`--state-store` applied), and the
    fields of `ref` that the store uses: no namespace for s3 (not part of its key), a bucket
    only for a store that needs one (the one the run uses: --state-store's wins)."""
    rules = store_class(kind)
    where = describe_state(kind, ref, session.store, session.environ)
    shown: dict[str, Any] = {"where": where, "name": ref.name}
    if rules.namespaced:
        shown["namespace"] = ref.namespace
    if rules.needs_bucket:
        given = session.store.location_for(kind) if session.store else None
        shown["bucket"] = rules.bucket_for(ref, given)
    return shown


def _stdin(command: PreparedCommand, prepared: PreparedStep) -> str:
    """A command's stdin as the plan shows it: never its text, which may hold secrets."""
    text = command.stdin or ""
    template = command.source.stdin or ""
    # A generated secret is known once the state is read: not by the plan.
    unknown = prepared.waiting_for or (prepared.step.generated and "secrets" in template)
    if unknown and "${{" in template:
        return "(not shown; its size is known when the step runs)"
    return f"({len(text.encode())} bytes, not shown)"


def _promise(names: tuple[str, ...]) -> str | list[str]:
    """`on.promise` as the step file may say it: one name, a list, or "any"."""
    if not names:
        return "any"
    return names[0] if len(names) == 1 else list(names)


def print_plan(session: Session, out: TextIO, fmt: str = "text") -> None:
    # Masked as data first: a secret's value may be escaped differently once serialised (a `"`
    # in JSON), and a masked value must stay a string (`'***'`, not a YAML alias `***`).
    plans = session.log.masker.mask_values([describe(p, session) for p in session.prepared])
    masker = session.log.masker
    if fmt == "json":
        out.write(masker.mask(json.dumps(plans, indent=2)) + "\n")
        return
    import yaml

    # libyaml's emitter: the pure-Python one takes seconds per MiB of a long string.
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for plan in plans:
        text = yaml.dump(plan, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120)
        out.write(masker.mask(text) + "---\n")
    if not plans:
        out.write("# no step to run\n")
