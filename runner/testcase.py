"""`runner test`: run steps against case folders and compare what they made with what is expected.

A case folder holds one request and what the steps should make of it:

    CASE/
      input/object.yaml   the request (required)
      env                 KEY=VALUE lines: the container's environment (optional; secrets allowed)
      case.yaml           options (optional): steps, stepsDir, action, workflow, promise,
                          pipeline, expect, secrets, timeout, description
      steps               step names, one a line (optional; the same as `steps:` in case.yaml)
      output/             the expected /kratix/output   (absent: the steps write nothing there)
      metadata/           the expected /kratix/metadata (status.yaml, destination-selectors.yaml)

Each case runs `runner run` in its own subprocess, with fresh output and metadata folders and a
fresh local state store in a temporary folder, so cases can't see each other or the user's state.
YAML and JSON files are compared as data (key order and formatting don't matter) and differences
are shown as unified diffs of the normalised text. Secrets from the env file are masked in
everything shown and in everything `--update` writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import InvalidError, Problem
from runner.masking import Masker
from runner.spec.loader import default_steps_dir, display, load_steps
from runner.spec.schema import closest
from runner.spec.source import Document, read_yaml_file

CASE_FILE = "case.yaml"
ENV_FILE = "env"
STEPS_FILE = "steps"
REQUEST = Path("input") / "object.yaml"
TREES = ("output", "metadata")
DEFAULT_TIMEOUT = 600.0

# Environment variables a case must not inherit from the shell running `runner test`: they would
# make the result depend on who runs it (the case says what it wants instead).
_NOT_INHERITED = re.compile(
    r"^(KRATIX_.*|RUNNER_STATE_STORE|RUNNER_STATE_DIR|RUNNER_STEPS_DIR|RUNNER_LOG_FORMAT"
    r"|KUBERNETES_SERVICE_HOST|KUBERNETES_SERVICE_PORT)$"
)
# Env file variables masked even when no step declares them as a secret.
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|API_KEY", re.I
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$")
_CASE_KEYS = {
    "description": "what the case checks",
    "steps": "the steps to run (default: every step whose `on` matches)",
    "stepsDir": "the steps folder, relative to the case folder",
    "action": "KRATIX_WORKFLOW_ACTION: configure (default) or delete",
    "workflow": "KRATIX_WORKFLOW_TYPE: resource (default) or promise",
    "promise": "KRATIX_PROMISE_NAME",
    "pipeline": "KRATIX_PIPELINE_NAME",
    "expect": "the expected exit code and output: {exitCode, stdoutContains, stderrContains}",
    "secrets": "more env file variables to mask",
    "timeout": "longest the case may run (e.g. 30s, 2m)",
}
_EXPECT_KEYS = ("exitCode", "stdoutContains", "stderrContains")


# -- the case ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    exit_code: int = 0
    stdout_contains: tuple[str, ...] = ()
    stderr_contains: tuple[str, ...] = ()


@dataclass
class Case:
    path: Path
    steps_dir: Path
    steps: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    kratix: dict[str, str] = field(default_factory=dict)  # KRATIX_* from case.yaml
    expect: Expect = Expect()
    secret_names: set[str] = field(default_factory=set)
    timeout: float | None = None
    description: str = ""

    @property
    def name(self) -> str:
        return display(self.path)

    @property
    def input_dir(self) -> Path:
        return self.path / "input"

    def secrets(self) -> dict[str, str]:
        """The env file values that are masked: declared by a step, named in case.yaml, or
        named like a secret."""
        return {
            k: v for k, v in self.env.items() if k in self.secret_names or _SECRET_NAME.search(k)
        }


def find_cases(paths: Iterable[str]) -> tuple[list[Path], list[Problem]]:
    """The case folders named; a folder that is not a case but holds cases stands for them."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            what = "no such folder" if not path.exists() else "not a folder"
            problems.append(Problem(f"{what}: a case is a folder holding {REQUEST}", raw))
            continue
        if _looks_like_case(path):
            found.append(path)
            continue
        inner = sorted({p.parent.parent for p in path.rglob(str(REQUEST))})
        if inner:
            found.extend(inner)
        else:
            problems.append(
                Problem(
                    f"no {REQUEST} in this folder or below",
                    raw,
                    hint=f"a case folder holds {REQUEST} and the expected output/ and metadata/",
                )
            )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(os.path.relpath(p)) if _inside_cwd(p) else p for p in unique], problems


def _looks_like_case(path: Path) -> bool:
    markers = ("input", CASE_FILE, ENV_FILE, STEPS_FILE, *TREES)
    return any((path / m).exists() for m in markers)


def _inside_cwd(path: Path) -> bool:
    return path.is_relative_to(Path.cwd().resolve())


def load_case(path: Path, steps_dir_option: str | None, environ: Mapping[str, str]) -> Case:
    """Read a case folder; InvalidError (exit 2) names everything wrong with it."""
    problems: list[Problem] = []
    request = path / REQUEST
    if not request.is_file():
        problems.append(
            Problem(
                f"no request: {REQUEST} is missing",
                display(path),
                hint=f"every case folder needs the resource request the steps read, as {REQUEST}",
            )
        )
    options: dict[str, Any] = {}
    doc: Document | None = None
    case_file = path / CASE_FILE
    if case_file.is_file():
        docs, found = read_yaml_file(case_file, display(case_file))
        problems += found
        if docs:
            doc = docs[0]
            if len(docs) > 1:
                problems.append(doc.problem((), f"{CASE_FILE} holds one YAML document"))
            if isinstance(doc.value, dict):
                options = doc.value
                problems += _check_options(doc)
            elif doc.value is not None:
                problems.append(doc.problem((), f"{CASE_FILE} must be a mapping of options"))

    env: dict[str, str] = {}
    if (path / ENV_FILE).is_file():
        env, found = parse_env_file(path / ENV_FILE)
        problems += found

    steps = [str(s) for s in _as_list(options.get("steps"))]
    if (path / STEPS_FILE).is_file():
        names, found = parse_steps_file(path / STEPS_FILE)
        problems += found
        if "steps" in options:
            assert doc is not None
            problems.append(
                doc.problem(
                    ("steps",),
                    f"the steps are named both here and in {display(path / STEPS_FILE)}",
                    hint="keep one of them",
                )
            )
        steps = names

    declared_dir = options.get("stepsDir")
    steps_dir = resolve_steps_dir(
        path, declared_dir if isinstance(declared_dir, str) else None, steps_dir_option, environ
    )
    if not steps_dir.exists():
        where = (
            f"stepsDir in {display(case_file)}"
            if declared_dir
            else "--steps-dir, $RUNNER_STEPS_DIR, a steps.d above the case, /steps.d, ./steps.d"
        )
        problems.append(
            Problem(
                f"steps folder {display(steps_dir)} does not exist (from {where})", display(path)
            )
        )
    if problems:
        raise InvalidError(*problems)

    kratix = {}
    for key, variable in (
        ("action", "KRATIX_WORKFLOW_ACTION"),
        ("workflow", "KRATIX_WORKFLOW_TYPE"),
        ("promise", "KRATIX_PROMISE_NAME"),
        ("pipeline", "KRATIX_PIPELINE_NAME"),
    ):
        if options.get(key) is not None:
            kratix[variable] = str(options[key])
    expect = options.get("expect") or {}
    return Case(
        path=path,
        steps_dir=steps_dir,
        steps=steps,
        env=env,
        kratix=kratix,
        expect=Expect(
            exit_code=int(expect.get("exitCode", 0)),
            stdout_contains=tuple(str(s) for s in _as_list(expect.get("stdoutContains"))),
            stderr_contains=tuple(str(s) for s in _as_list(expect.get("stderrContains"))),
        ),
        secret_names=set(_as_list(options.get("secrets"))) | declared_secret_envs(steps_dir),
        timeout=_seconds(options.get("timeout")),
        description=str(options.get("description") or ""),
    )


def resolve_steps_dir(
    case_dir: Path, declared: str | None, option: str | None, environ: Mapping[str, str]
) -> Path:
    """`stepsDir` of case.yaml (relative to the case), else `--steps-dir`, else
    `$RUNNER_STEPS_DIR`, else the nearest `steps.d` in the case folder or above it, else the
    CLI's default (`/steps.d` if it exists, else `./steps.d`)."""
    if declared:
        return case_dir / declared
    if option:
        return Path(option)
    if environ.get("RUNNER_STEPS_DIR"):
        return Path(environ["RUNNER_STEPS_DIR"])
    here = case_dir.resolve()
    for folder in (here, *here.parents):
        if (folder / "steps.d").is_dir():
            candidate = folder / "steps.d"
            return Path(os.path.relpath(candidate)) if _inside_cwd(candidate) else candidate
    return default_steps_dir(None)


_declared_cache: dict[Path, frozenset[str]] = {}


def declared_secret_envs(steps_dir: Path) -> frozenset[str]:
    """The environment variables the steps read as secrets (`secrets: {X: {env: NAME}}`)."""
    key = steps_dir.resolve()
    if key not in _declared_cache:
        loaded = load_steps([steps_dir])  # problems are the run's to report
        _declared_cache[key] = frozenset(
            s.env for step in loaded.steps for s in step.secrets if s.env
        )
    return _declared_cache[key]


def _check_options(doc: Document) -> list[Problem]:
    """case.yaml's keys and types, with `did you mean` for typos."""
    problems: list[Problem] = []
    value: dict[str, Any] = doc.value
    for key in value:
        if key not in _CASE_KEYS:
            guess = closest(key, set(_CASE_KEYS))
            problems.append(
                doc.problem(
                    (key,),
                    f'unknown option "{key}"',
                    hint=f'did you mean "{guess}"?'
                    if guess
                    else "options: " + ", ".join(_CASE_KEYS),
                )
            )

    def strings(key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> None:
        if key not in value:
            return
        items = value[key]
        listed = items if isinstance(items, list) else [items]
        for i, item in enumerate(listed):
            path = (key, i) if isinstance(items, list) else (key,)
            if not isinstance(item, str):
                problems.append(
                    doc.problem(path, f"expected a string{' or a list of them' if what else ''}")
                )
            elif pattern and not pattern.match(item):
                problems.append(doc.problem(path, f'"{item}" is not {what}'))

    strings("steps", _STEP_NAME, "a step name")
    strings("secrets", _ENV_NAME, "an environment variable name")
    for key in ("description", "stepsDir", "promise", "pipeline"):
        if key in value and not isinstance(value[key], str):
            problems.append(doc.problem((key,), "expected a string"))
    for key, allowed in (
        ("action", ("configure", "delete")),
        ("workflow", ("resource", "promise")),
    ):
        if key in value and value[key] not in allowed:
            problems.append(
                doc.problem((key,), f"expected {' or '.join(allowed)}, found {value[key]!r}")
            )
    if "timeout" in value and _seconds(value["timeout"]) is None:
        problems.append(doc.problem(("timeout",), "expected a duration like 30s or 2m, or seconds"))
    expect = value.get("expect")
    if expect is not None:
        if not isinstance(expect, dict):
            problems.append(
                doc.problem(
                    ("expect",), "expected a mapping: {exitCode, stdoutContains, stderrContains}"
                )
            )
            return problems
        for key in expect:
            if key not in _EXPECT_KEYS:
                guess = closest(key, set(_EXPECT_KEYS))
                problems.append(
                    doc.problem(
                        ("expect", key),
                        f'unknown expectation "{key}"',
                        hint=f'did you mean "{guess}"?'
                        if guess
                        else "expectations: " + ", ".join(_EXPECT_KEYS),
                    )
                )
        code = expect.get("exitCode", 0)
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            problems.append(doc.problem(("expect", "exitCode"), "expected an exit code, 0 to 255"))
        for key in ("stdoutContains", "stderrContains"):
            items = expect.get(key)
            if items is not None and not all(isinstance(s, str) for s in _as_list(items)):
                problems.append(
                    doc.problem(("expect", key), "expected a string or a list of strings")
                )
    return problems


def parse_env_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """KEY=VALUE lines; `#` starts a comment line; `export ` is allowed; one pair of matching
    quotes around a value is removed. Nothing is expanded: `$` in a password stays `$`."""
    env: dict[str, str] = {}
    problems: list[Problem] = []
    name = display(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [
            Problem(f"cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}", name)
        ]
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            # Never quote the line: it may hold a secret.
            problems.append(
                Problem("expected KEY=VALUE (KEY: letters, digits and _)", name, number, 1)
            )
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env, problems


def parse_steps_file(path: Path) -> tuple[list[str], list[Problem]]:
    names: list[str] = []
    problems: list[Problem] = []
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        return [], [Problem(f"cannot read: {reason}", display(path))]
    for number, line in enumerate(text.splitlines(), 1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not _STEP_NAME.match(item):
            problems.append(Problem(f'"{item}" is not a step name', display(path), number, 1))
        names.append(item)
    return names, problems


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _seconds(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    match = _DURATION.match(str(value))
    if not match:
        return None
    return (
        float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    )


# -- running -------------------------------------------------------------------------------------
@dataclass
class Difference:
    path: str  # output/app/deployment.yaml
    kind: str  # changed | missing | unexpected
    diff: list[str] = field(default_factory=list)

    def headline(self) -> str:
        return {
            "changed": f"{self.path}: differs",
            "missing": f"{self.path}: expected, but not produced",
            "unexpected": f"{self.path}: produced, but not expected",
        }[self.kind]


@dataclass
class Result:
    case: Case
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    failures: list[str] = field(default_factory=list)  # exit code and stdout/stderr checks
    differences: list[Difference] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: Path | None = None
    error: str | None = None  # the case could not be run at all

    @property
    def passed(self) -> bool:
        return not self.failures and not self.differences and self.error is None


@dataclass(frozen=True)
class Options:
    update: bool = False
    keep: bool = False
    timeout: float = DEFAULT_TIMEOUT


def run_case(case: Case, options: Options, environ: Mapping[str, str]) -> Result:
    """Run the case's steps in a subprocess with fresh folders and compare the results."""
    masker = Masker()
    warnings = []
    for name, value in case.secrets().items():
        warning = masker.add(name, value)
        if warning:
            warnings.append(f"{display(case.path / ENV_FILE)}: {warning}")
    result = Result(case)
    scratch = Path(tempfile.mkdtemp(prefix=f"runner-test-{case.path.name}-"))
    try:
        folders = {name: scratch / name for name in ("output", "metadata", "state", "tmp")}
        for folder in folders.values():
            folder.mkdir()
        argv = [
            sys.executable, "-m", "runner", "run", *case.steps,
            "--steps-dir", str(case.steps_dir), "--input", str(case.input_dir),
            "--output", str(folders["output"]), "--metadata", str(folders["metadata"]),
            "--state-store", f"local:{folders['state']}", "--log-format", "text",
        ]  # fmt: skip
        env = child_environment(case, environ, folders["tmp"])
        started = time.monotonic()
        code, stdout, stderr, timed_out = _execute(argv, env, case.timeout or options.timeout)
        result.duration = time.monotonic() - started
        result.exit_code = code
        result.stdout = masker.mask(stdout)
        result.stderr = "".join(f"runner test: warning: {w}\n" for w in warnings) + masker.mask(
            stderr
        )
        expect = case.expect
        if timed_out:
            result.failures.append(f"timed out after {case.timeout or options.timeout:g}s")
        elif code != expect.exit_code:
            result.failures.append(f"exit code {code}, expected {expect.exit_code}")
        for text in expect.stdout_contains:
            if text not in result.stdout:
                result.failures.append(f"stdout does not contain {text!r}")
        for text in expect.stderr_contains:
            if text not in result.stderr:
                result.failures.append(f"stderr does not contain {text!r}")
        actual = {name: masked_tree(folders[name], masker) for name in TREES}
        for name in TREES:
            result.differences += compare_trees(snapshot(case.path / name), actual[name], name)
        if options.update and not result.failures and result.differences:
            result.updated = write_expectations(case, actual)
            result.differences = []
        if options.keep:
            result.kept = scratch
    except OSError as exc:
        result.error = f"cannot run the case: {exc.strerror or exc}"
    finally:
        if not options.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def child_environment(case: Case, environ: Mapping[str, str], tmp: Path) -> dict[str, str]:
    """The environment of the case's `runner run`: the caller's, without anything that would
    make the result depend on who runs it, then the case's defaults, env file and case.yaml."""
    env = {k: v for k, v in environ.items() if not _NOT_INHERITED.match(k)}
    package_root = str(Path(__file__).resolve().parent.parent)
    if Path(package_root).name not in ("site-packages", "dist-packages"):
        # A source checkout run as `python -m runner`: the child must import the same code.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(TMPDIR=str(tmp), KRATIX_WORKFLOW_ACTION="configure", KRATIX_WORKFLOW_TYPE="resource")
    env.update(case.env)
    env.update(case.kratix)
    return env


# The runs under way, so an interrupted `runner test` can stop them (see stop_all).
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()
# After SIGTERM, how long a run gets to stop its command and save its state before SIGKILL.
STOP_GRACE = 15.0


def _execute(
    argv: list[str], env: dict[str, str], timeout: float
) -> tuple[int | None, str, str, bool]:
    """Run argv; on timeout it gets SIGTERM (the runner forwards it to its command, which runs
    in a process group of its own) and, if it hasn't stopped within STOP_GRACE, SIGKILL."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    with _running_lock:
        _running.add(process)
    try:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out, err = _stop(process)
            return None, _text(out), _text(err), True
        except BaseException:
            _stop(process)
            raise
        return process.returncode, _text(out), _text(err), False
    finally:
        with _running_lock:
            _running.discard(process)


def _stop(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        return process.communicate(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def stop_all() -> None:
    """SIGTERM every run under way (when `runner test` itself is interrupted)."""
    with _running_lock:
        running = list(_running)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- comparing -----------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, bytes]:
    """relative path ("app/deployment.yaml") -> content, for every file under root."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def masked_tree(root: Path, masker: Masker) -> dict[str, bytes]:
    return {rel: mask_bytes(data, masker) for rel, data in snapshot(root).items()}


def mask_bytes(data: bytes, masker: Masker) -> bytes:
    if not masker:
        return data
    return masker.mask(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def compare_trees(
    expected: dict[str, bytes], actual: dict[str, bytes], prefix: str
) -> list[Difference]:
    differences: list[Difference] = []
    for rel in sorted(expected.keys() | actual.keys()):
        path = f"{prefix}/{rel}"
        if rel not in actual:
            differences.append(Difference(path, "missing"))
        elif rel not in expected:
            differences.append(Difference(path, "unexpected", _preview(path, actual[rel])))
        else:
            diff = compare_files(path, expected[rel], actual[rel])
            if diff is not None:
                differences.append(Difference(path, "changed", diff))
    return differences


def compare_files(path: str, expected: bytes, actual: bytes) -> list[str] | None:
    """None when the files are equal (as data, for YAML and JSON); else a unified diff."""
    if expected == actual:
        return None
    left, right = normalise(path, expected), normalise(path, actual)
    if left == right:
        return None
    if isinstance(left, bytes) or isinstance(right, bytes):
        return [
            f"binary files differ ({len(expected)} bytes expected, {len(actual)} bytes produced)"
        ]
    diff = list(difflib_unified(left, right, f"expected/{path}", f"actual/{path}"))
    if not diff:
        return ["the files differ only in line endings or the newline at the end"]
    return diff


def difflib_unified(left: str, right: str, from_file: str, to_file: str) -> Iterable[str]:
    import difflib

    return difflib.unified_diff(
        left.splitlines(), right.splitlines(), from_file, to_file, lineterm=""
    )


def normalise(path: str, data: bytes) -> str | bytes:
    """YAML and JSON as sorted, block-style YAML/JSON text; other text as it is; binary as bytes."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        from runner.spec.source import parse_yaml

        docs, problems = parse_yaml(text, path)
        if problems:
            return text
        try:
            return yaml.safe_dump_all(
                [d.value for d in docs],
                sort_keys=True,
                allow_unicode=True,
                default_flow_style=False,
                width=100,
            )
        except yaml.YAMLError:
            return text
    if suffix == ".json":
        try:
            return json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        except ValueError:
            return text
    return text


def _preview(path: str, data: bytes, limit: int = 20) -> list[str]:
    """The start of an unexpected file, as an all-added diff."""
    text = normalise(path, data)
    if isinstance(text, bytes):
        return [f"binary file, {len(data)} bytes"]
    lines = text.splitlines()
    shown = [f"+{line}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"+... ({len(lines) - limit} more lines)")
    return shown


def write_expectations(case: Case, actual: dict[str, dict[str, bytes]]) -> list[str]:
    """Make the case's output/ and metadata/ what the run produced (masked); files that are
    already equal as data are left as the author wrote them. Returns the paths changed."""
    changed: list[str] = []
    for name in TREES:
        root = case.path / name
        expected = snapshot(root)
        produced = actual[name]
        for rel in sorted(expected.keys() | produced.keys()):
            target = root / rel
            if rel not in produced:
                target.unlink()
            elif rel in expected and compare_files(rel, expected[rel], produced[rel]) is None:
                continue
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(produced[rel])
            changed.append(f"{name}/{rel}")
        _remove_empty_folders(root)
    return changed


def _remove_empty_folders(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


# -- reporting -----------------------------------------------------------------------------------
class Style:
    """ANSI colours when printing to a terminal (and NO_COLOR is unset), else plain text."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def ok(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def note(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def diff_line(self, line: str) -> str:
        if line.startswith(("+++", "---")):
            return self._wrap("1", line)
        if line.startswith("@@"):
            return self._wrap("36", line)
        if line.startswith("+"):
            return self.ok(line)
        if line.startswith("-"):
            return self.bad(line)
        return line


def format_result(result: Result, style: Style, verbose: bool = False, tail: int = 30) -> str:
    """A case's report: one line when it passed, the reasons and diffs when it didn't."""
    case = result.case
    timing = style.dim(f"({result.duration:.2f}s)")
    lines: list[str] = []
    if result.error:
        lines.append(f"{style.bad('ERROR')} {case.name}: {result.error}")
    elif result.passed and result.updated:
        lines.append(f"{style.note('UPDATED')} {case.name} {timing}")
        lines += [f"    wrote {path}" for path in result.updated]
    elif result.passed:
        expected = f", exit {case.expect.exit_code} as expected" if case.expect.exit_code else ""
        lines.append(
            f"{style.ok('PASS')} {case.name} {style.dim(f'({result.duration:.2f}s{expected})')}"
        )
    else:
        lines.append(f"{style.bad('FAIL')} {case.name} {timing}")
        if case.description:
            lines.append(f"    {style.dim(case.description)}")
        lines += [f"    {failure}" for failure in result.failures]
        for difference in result.differences:
            lines.append(f"    {difference.headline()}")
            lines += [f"      {style.diff_line(line)}" for line in difference.diff]
    if result.kept is not None:
        lines.append(f"    {style.dim(f'results kept in {result.kept}')}")
    show_log = verbose or (result.failures and not result.passed)
    if show_log and not result.error:
        lines += _log_excerpt("stdout", result.stdout, None if verbose else tail, style)
        lines += _log_excerpt("stderr", result.stderr, None if verbose else tail, style)
    return "\n".join(lines)


def _log_excerpt(name: str, text: str, tail: int | None, style: Style) -> list[str]:
    lines = text.splitlines()
    if not lines:
        return []
    header = f"    {name} of runner run"
    if tail is not None and len(lines) > tail:
        header += f" (last {tail} of {len(lines)} lines)"
        lines = lines[-tail:]
    return [style.dim(header + ":"), *(f"      | {line}" for line in lines)]


def summary(results: list[Result], style: Style) -> str:
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    updated = sum(1 for r in results if r.updated)
    text = f"{passed} passed, {failed} failed"
    if updated:
        text += f" ({updated} updated)"
    return style.bad(text) if failed else style.ok(text)


def write_junit(path: Path, results: list[Result]) -> None:
    """A JUnit XML report, which CI systems show as test results."""
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite", name="runner test", tests=str(len(results)),
        failures=str(sum(1 for r in results if not r.passed and not r.error)),
        errors=str(sum(1 for r in results if r.error)),
        time=f"{sum(r.duration for r in results):.3f}",
    )  # fmt: skip
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="runner.test",
            name=result.case.name,
            time=f"{result.duration:.3f}",
        )
        if result.error:
            ET.SubElement(case, "error", message=result.error)
        elif not result.passed:
            report = format_result(result, Style(False))
            first = (result.failures or [d.headline() for d in result.differences])[0]
            ET.SubElement(case, "failure", message=first).text = report
        if result.stderr:
            ET.SubElement(case, "system-err").text = result.stderr
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


__all__ = [
    "Case", "Difference", "Expect", "Options", "Result", "Style", "compare_files",
    "compare_trees", "find_cases", "format_result", "load_case", "normalise", "parse_env_file",
    "run_case", "summary", "write_junit",
]  # fmt: skip
