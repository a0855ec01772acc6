"""A step made concrete for one request: inputs resolved, secrets read, values computed, its
`if:` and its commands' `if:` decided, templates rendered.

`run` executes a PreparedStep; `plan` prints one. Preparing reads, and writes nothing and
runs nothing: it reads the secrets (their environment variables and files) and, for a state
whose namespace the step leaves unset, the service account's namespace file (or
$POD_NAMESPACE).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.base.errors import InvalidError, Problem
from runner.base.source import Document, PathKey
from runner.language.documents import ManifestError
from runner.language.expressions import compile_expression
from runner.language.interpolation import TemplateError, has_template
from runner.language.source_paths import open_base, reads_outputs, render_source
from runner.platform.exec_limits import too_big
from runner.platform.kratix import KratixContext, service_account_dir
from runner.resolve.inputs import exported, resolve_inputs
from runner.resolve.secrets import resolve_secrets
from runner.resolve.state_keys import readable_keys
from runner.resolve.step_outputs import Pending, StepsSeen
from runner.resolve.values import for_each_problems, holds, resolve_values
from runner.state import NONE, StoreSpec, default_kind, store_class
from runner.state.base import StateRef
from runner.state.encryption import Keys
from runner.stepfile.model import (
    Command,
    Step,
    feeds_sensitive,
    input_variable,
    state_key,
    value_variable,
)
from runner.stepfile.template_places import render_at

# The store that keeps text as it is, for anyone who may read ConfigMaps: no generated secret.
CLEAR_STORE = "configmap"
# Where Kratix runs promise workflows unless the Promise names a pipelineNamespace.
SYSTEM_NAMESPACE = "kratix-platform-system"


@dataclass(frozen=True)
class PreparedCommand:
    argv: list[str]
    cwd: str  # relative to the workdir, "." for the workdir itself
    env: dict[str, str]  # this command's own extra environment
    timeout: float | None
    continue_on_error: bool
    stdout: str | None
    source: Command
    skipped: str | None = None  # why its `if:` keeps it from running
    stdin: str | None = None  # rendered, may hold secrets: never logged or shown
    echo: bool = True  # False: its stdout reaches only its `stdout:` file, not the log

    def describe(self) -> str:
        """The rendered command for logs, quoted as a shell would read it (`shlex.join`)."""
        return self.source.describe() if self.source.script is not None else shlex.join(self.argv)


@dataclass(frozen=True)
class PreparedStep:
    step: Step
    inputs: dict[str, Any]
    secrets: dict[str, str]
    workdir: Path  # the step's workdir as written (copied first when copyWorkdir)
    env: dict[str, str]  # the step's environment on top of the container's: kratix, inputs, env:
    commands: list[PreparedCommand]
    store: str  # a registered store kind (runner.state.STORES), or none
    state_ref: StateRef | None
    # What templates and expressions read: inputs, values, kratix, steps (outputs come later).
    context: Mapping[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the step's `if:` keeps it from running
    # The steps whose outputs it reads that have not run yet: what reads them is left as
    # written (templates unrendered, `if:`s undecided), and the step is prepared again at its
    # turn. Empty: it is ready to run.
    waiting_for: frozenset[str] = frozenset()
    # Inputs too large for an environment variable: not exported as INPUT_* (logged once).
    unexported: tuple[str, ...] = ()
    keys: Keys | None = None  # state.encryption's keys, read (runner/state/encryption.py)
    # The keys that could not be read (`runner state`); for a run, only the fallback keys that
    # are not there (the others are exit 2 in prepare): its restore warns of them.
    key_problems: tuple[Problem, ...] = ()

    @property
    def values(self) -> dict[str, Any]:
        """The values known so far (all of them once the step is ready)."""
        return self.known(self.context)

    @staticmethod
    def known(context: Mapping[str, Any]) -> dict[str, Any]:
        values = context.get("values", {})
        return dict(getattr(values, "known", values))

    def with_steps(self, steps: Mapping[str, Any]) -> PreparedStep:
        """The same step, its results reading `steps` (what has been recorded by its turn)."""
        return replace(self, context={**self.context, "steps": steps})


def prepare(
    step: Step,
    ctx: KratixContext,
    request: Document,
    environ: Mapping[str, str],
    store_override: StoreSpec | None = None,
    need_secrets: bool = True,
    steps: Mapping[str, Any] | None = None,
) -> PreparedStep:
    """Resolve everything a run needs, or raise InvalidError with every problem found.

    `steps`: what steps have recorded (runner.resolve.step_outputs.recorded_steps). What reads the outputs
    of one not run yet is left for the step's turn (`waiting_for`).
    """
    # Inputs, values and `if:` first: a step that will not run needs no secrets and renders
    # nothing (its templates may read outputs of a step that was skipped too).
    problems: list[Problem] = []
    waiting: set[str] = set()
    context: dict[str, Any] = {
        "kratix": ctx.template_values(),
        "steps": StepsSeen() if steps is None else steps,
    }
    try:
        context["inputs"] = inputs = resolve_inputs(step, request)
    except InvalidError as exc:  # reported with the secrets' problems, below
        problems += exc.problems
        inputs = {}
    if not problems:
        context["values"] = values = resolve_values(step, context)
        waiting.update(getattr(values, "unknown", {}).values())
        try:
            if step.condition and not holds(step, step.condition, context, ("spec", "if")):
                skipped = f"if: {step.condition} is false{_unrecorded(step.condition, context)}"
                return PreparedStep(
                    step, inputs, {}, step.folder, {}, [], NONE, None, context, skipped
                )
        except Pending as exc:  # decided at its turn; until then, check all of it
            waiting.add(exc.step)
        problems += for_each_problems(step, context, waiting)
    try:
        secrets = resolve_secrets(step, environ)
    except InvalidError as exc:
        if need_secrets:
            problems += exc.problems
        secrets = {}
    if problems:
        raise InvalidError(*problems)

    # What `${{ secrets.NAME }}` reads where the table lets a template read secrets (stdin).
    readable = {**context, "secrets": _secret_texts(step, secrets)}

    def text(value: str, path: PathKey, wait: bool = True) -> str:
        """`value` rendered as the table of template places says for `path`: from the names the
        place may read, each value in one path component where it builds a path. One that reads
        what is not known yet stays as written (`wait=False`: raises Pending)."""
        try:
            rendered: str = render_at(path, value, readable)
            return rendered
        except Pending as exc:
            waiting.add(exc.step)
            if not wait:
                raise
        except TemplateError as exc:
            problems.append(step.document.problem(path, exc.message))
        return value

    def condition(expression: str | None, path: PathKey) -> bool:
        """Whether a command's `if:` holds; one not known yet holds for now."""
        try:
            return not expression or holds(step, expression, context, path)
        except Pending as exc:
            waiting.add(exc.step)
            return True

    inputs_env, big_inputs = exported("inputs", inputs, input_variable)
    # Only the values known by now: a step waiting for some is prepared again at its turn.
    values_env, big_values = exported("values", PreparedStep.known(context), value_variable)
    unexported = big_inputs + big_values
    env = {**ctx.command_env(), **inputs_env, **values_env}
    env.update({k: text(v, ("spec", "env", k)) for k, v in step.env.items()})
    workdir = (step.folder / text(step.workdir, ("spec", "workdir"))).resolve()
    commands = [_command(step, c, text, condition) for c in _selected_commands(step, ctx)]
    try:
        store, ref = _state(step, ctx, request, text, environ, store_override)
    except Pending:  # its name is decided at its turn
        store, ref = NONE, None
    problems += _picked_file_problems(step, context, waiting)
    keys: Keys | None = None
    key_problems: list[Problem] = []
    if ref is not None:
        keys, key_problems, absent = readable_keys(step, environ)
        if need_secrets:  # `runner state` opens a state with the keys it has
            problems += key_problems
        key_problems += absent  # fallback keys: told, not fatal (runner/engine/state.py)
        if step.generated and store == CLEAR_STORE and step.state.encryption is None:
            # `validate` refuses it in the step file; --state-store can still choose it.
            names = ", ".join(s.name for s in step.generated)
            problems.append(
                step.document.problem(
                    ("spec", "state"),
                    f"secret {names} is generated and kept in the step's state: the "
                    f"{store} store would hold it in clear",
                    "run with --state-store secret (or local, s3), or encrypt the state",
                )
            )
    if problems:
        raise InvalidError(*problems)
    return PreparedStep(
        step, inputs, secrets, workdir, env, commands, store, ref, context,
        waiting_for=frozenset(waiting), unexported=unexported, keys=keys,
        key_problems=tuple(key_problems),
    )  # fmt: skip


def _picked_file_problems(
    step: Step, context: Mapping[str, Any], waiting: set[str]
) -> list[Problem]:
    """A templated `from:` (of a manifest or an `output:` entry) that reads none of this step's
    outputs is rendered now: a value a path may not hold, or a base file the request picks that
    is not there, stops the run before anything runs (exit 2). An entry its `if:` leaves out is
    not checked; one whose `if:` or path reads outputs, or that picks a file per forEach item,
    is checked when it is written."""
    problems: list[Problem] = []
    entries = [
        (m.base, m.condition, m.path, m) for m in step.manifests if m.base and m.for_each is None
    ] + [(o.source, o.condition, o.path[:-1], None) for o in step.output]
    for text, condition, path, manifest in entries:
        if not has_template(text) or reads_outputs(text):
            continue
        try:
            if condition and (
                reads_outputs_expression(condition)
                or not holds(step, condition, context, (*path, "if"))
            ):
                continue
            if manifest is None:
                render_source(text, context)
                continue
            fd, _ = open_base(step.folder, text, context, os.path.dirname(step.document.file))
            os.close(fd)
        except Pending as exc:
            waiting.add(exc.step)
        except InvalidError as exc:
            problems += exc.problems
        except TemplateError as exc:
            problems.append(step.document.problem((*path, "from"), exc.message, offset=exc.offset))
        except ManifestError as exc:
            problems.append(step.document.problem((*path, "from"), exc.message, offset=exc.offset))
    return problems


def with_secrets(prepared: PreparedStep, more: Mapping[str, str]) -> PreparedStep:
    """The same step with `more` secrets (generated ones, known once its state is restored):
    they reach its commands' environment, and their `stdin:` is rendered again to read them."""
    if not more:
        return prepared
    secrets = {**prepared.secrets, **more}
    names = {**prepared.context, "secrets": _secret_texts(prepared.step, secrets)}
    commands = [
        c
        if c.source.stdin is None
        else replace(c, stdin=render_at((*c.source.path, "stdin"), c.source.stdin, names))
        for c in prepared.commands
    ]
    return replace(prepared, secrets=secrets, commands=commands)


def _unrecorded(condition: str, context: Mapping[str, Any]) -> str:
    """What a skip's log line adds when its `if:` read steps that recorded nothing (skipped,
    not selected, or a Pipeline that did not run them): their outputs read as null."""
    steps = context.get("steps")
    if not isinstance(steps, StepsSeen):
        return ""
    names = compile_expression(condition).names()
    read = {str(n.path[1]) for n in names if n.path[0] == "steps" and len(n.path) > 1}
    missing = sorted(name for name in read if name not in steps.recorded)
    if not missing:
        return ""
    return f" ({', '.join(missing)} recorded no outputs: they read as null)"


def command_env(
    environ: Mapping[str, str], prepared: PreparedStep, command: PreparedCommand
) -> dict[str, str]:
    """The whole environment a command starts with: the container's, the step's (kratix,
    inputs, `env:`), its secrets, then the command's own `env:`."""
    return {**environ, **prepared.env, **prepared.secrets, **command.env}


def size_problems(prepared: PreparedStep, environ: Mapping[str, str]) -> list[Problem]:
    """Commands whose argv and environment Linux would refuse to start (E2BIG), found before
    anything runs; each names the largest items, never their values."""
    problems = []
    for command in prepared.commands:
        if command.skipped:
            continue
        reason = too_big(command.argv, command_env(environ, prepared, command))
        if reason is not None:
            problems.append(
                prepared.step.document.problem(
                    command.source.path,
                    f"the command is {reason}",
                    "pass a large value on the command's stdin: instead, or in a file",
                )
            )
    return problems


def _selected_commands(step: Step, ctx: KratixContext) -> tuple[Command, ...]:
    if ctx.dry_run:
        return step.dry_run or ()
    return step.run


def _command(step: Step, command: Command, text: Any, condition: Any) -> PreparedCommand:
    path = command.path
    skipped = None
    if not condition(command.condition, (*path, "if")):
        skipped = f"if: {command.condition} is false"
    if command.script is not None:
        # The script is never rendered: inputs reach it only through the environment.
        argv = ["bash", "-euo", "pipefail", "-c", command.script, "runner-script"]
    else:
        assert command.argv is not None
        group, index = path[1], path[2]
        short_form = isinstance(step.document.value["spec"][group][index], list)
        argv_path = path if short_form else (*path, "argv")
        argv = [text(a, (*argv_path, i)) for i, a in enumerate(command.argv)]
    return PreparedCommand(
        argv=argv,
        cwd=text(command.workdir, (*path, "workdir")) if command.workdir else ".",
        env={k: text(v, (*path, "env", k)) for k, v in command.env.items()},
        timeout=command.timeout,
        continue_on_error=command.continue_on_error,
        stdout=command.stdout,
        source=command,
        skipped=skipped,
        # `stdin:` is the one template that may read secrets (`${{ secrets.NAME }}`).
        stdin=None if command.stdin is None else text(command.stdin, (*path, "stdin")),
        # Its output would reach the log before the sensitive output is known to the masker.
        echo=command.echo and not feeds_sensitive(command, step.sensitive_files()),
    )


def _secret_texts(step: Step, secrets: dict[str, str]) -> dict[str, str]:
    """What `${{ secrets.NAME }}` reads: each secret's value, "" for an optional one unset."""
    return {s.name: secrets.get(s.name, "") for s in step.secrets}


def _state(
    step: Step,
    ctx: KratixContext,
    request: Document,
    text: Any,
    environ: Mapping[str, str],
    override: StoreSpec | None,
) -> tuple[str, StateRef | None]:
    state = step.state
    store = override.kind if override else state.store or default_kind(environ)
    if store == NONE or not step.keeps_state:
        return NONE, None
    if store != state.store:
        # `validate` held the keys to the step's own store (or ConfigMap's rule); another store
        # chosen at run time may refuse some: say so before any command runs.
        _check_keys(step, store)
    name = (
        text(state.name, ("spec", "state", "name"), wait=False)
        if state.name
        else f"{ctx.object.get('name') or 'state'}-{step.name}"
    )
    # Default: where the pipeline runs, which is where Kratix creates the Role that
    # `rbac.permissions` grant: the pod's namespace (the request's, unless the Promise sets
    # workflows.config.pipelineNamespace); outside a pod, the request's, as Kratix's default.
    namespace = (
        text(state.namespace, ("spec", "state", "namespace"), wait=False)
        if state.namespace
        else pod_namespace(environ)
        or ctx.object.get("namespace")
        or (SYSTEM_NAMESPACE if ctx.workflow == "promise" else "default")
    )
    rules = store_class(store)
    bucket = text(state.bucket, ("spec", "state", "bucket"), wait=False) if state.bucket else None
    given = override.location_for(store) if override else None
    if rules.needs_bucket and not bucket and not given:
        raise InvalidError(
            step.document.problem(
                ("spec", "state"),
                f"the {store} store needs a bucket: none is given",
                f'add "bucket: NAME" to the state, or run with --state-store {store}://BUCKET/PREFIX',
            )
        )
    if (problem := rules.name_problem(name)) is not None:
        raise InvalidError(
            step.document.problem(("spec", "state", "name"), f'state name "{name}" {problem}')
        )
    if (problem := rules.namespace_problem(namespace)) is not None:
        raise InvalidError(
            step.document.problem(
                ("spec", "state", "namespace"), f'namespace "{namespace}" {problem}'
            )
        )
    return store, StateRef(
        step=step.name,
        name=name,
        namespace=namespace,
        object_name=ctx.object.get("name"),
        object_namespace=ctx.object.get("namespace"),
        bucket=bucket,
    )


def _check_keys(step: Step, store: str) -> None:
    rule = store_class(store)
    problems = []
    for index, item in enumerate(step.state.files):
        reason = rule.key_problem(item.key)
        if reason is None:
            continue
        derived = item.key == state_key(item.path)
        problems.append(
            step.document.problem(
                ("spec", "state", "files", index, "path" if derived else "key"),
                f'the {store} store cannot keep state file {item.path} under the key "{item.key}": '
                f"{reason}",
                f"give the file {'an explicit' if derived else 'another'} key, e.g. "
                f'"key: {rule.suggested_key(item.key)}"',
            )
        )
    if problems:
        raise InvalidError(*problems)


def pod_namespace(environ: Mapping[str, str]) -> str | None:
    """The pod's own namespace, from its service account mount, else `$POD_NAMESPACE`."""
    path = f"{service_account_dir(environ)}/namespace"
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return environ.get("POD_NAMESPACE") or None


def reads_outputs_expression(expression: str) -> bool:
    """Whether an expression reads this step's outputs (it is then decided after the commands)."""
    return any(name.path[0] == "outputs" for name in compile_expression(expression).names())
