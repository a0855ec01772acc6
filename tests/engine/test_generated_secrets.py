"""Generated secrets (`secrets.NAME.generate`) in process: made on the first run and kept in the
step's state, restored on later runs, saved before the commands run, never saved by a dry run,
forgotten with the state; reaching commands as env and `stdin:`, and never printed."""

from __future__ import annotations

import io
import string
from pathlib import Path

import pytest

from runner.base.errors import CommandFailed, InvalidError, StoreError
from runner.platform.log import Logger
from runner.resolve.secrets import make_secret
from runner.state import StoreSpec
from runner.state.base import UNCHECKED, StateRef
from runner.state.local import LocalStore
from runner.stepfile.model import DEFAULT_CHARSET, Generate, charset_problem
from tests.engine.world import open_session

REF = StateRef("create", "my-app-create", "default", "my-app", "default")
KEY = "generated-secret.DB_PASSWORD"

# The command keeps what it got (env and stdin) in files the test reads; it prints nothing.
CREATE = """
secrets:
  DB_PASSWORD: { generate: { length: LENGTH } }
state: STATE
workdir: ../work
run:
  - argv: [sh, -c, 'printf %s "$DB_PASSWORD" > env.txt; cat > stdin.txt; exit EXIT']
    stdin: "ALTER USER app PASSWORD '${{ secrets.DB_PASSWORD }}';"
"""


def _run(
    tmp: Path,
    *,
    length: int = 32,
    exit_code: int = 0,
    action: str = "configure",
    dry_run: bool = False,
    extra: str = "",
    state: str = "{ store: secret, save: always }",
) -> tuple[str, str]:
    """One run of the `create` step; the value its command got, and the runner's log."""
    spec = (
        CREATE.replace("LENGTH", str(length))
        .replace("STATE", state)
        .replace("EXIT", str(exit_code))
    )
    spec += extra
    (tmp / "work").mkdir(parents=True, exist_ok=True)
    for name in ("env.txt", "stdin.txt"):
        (tmp / "work" / name).unlink(missing_ok=True)
    env = {"KRATIX_WORKFLOW_ACTION": action, **({"KRATIX_DRY_RUN": "true"} if dry_run else {})}
    stream, out = io.StringIO(), io.StringIO()
    log = Logger(stream=stream, out=out)
    try:
        open_session(tmp, {"10-create": spec}, log=log, **env).run()
    finally:
        got = tmp / "work" / "env.txt"
        value = got.read_text() if got.exists() else ""
        logged = stream.getvalue() + out.getvalue()
        assert not value or value not in logged
    if value:
        assert (tmp / "work" / "stdin.txt").read_text() == f"ALTER USER app PASSWORD '{value}';"
    return value, logged


def _stored(tmp: Path) -> dict[str, bytes] | None:
    loaded = LocalStore(tmp / "state").load(REF)
    return None if loaded is None else loaded.files


def test_first_run_makes_the_secret_and_keeps_it_in_the_state(tmp_path: Path) -> None:
    value, log = _run(tmp_path)
    assert len(value) == 32 and set(value) <= set(DEFAULT_CHARSET)
    assert _stored(tmp_path) == {KEY: value.encode()}
    assert "generated secret DB_PASSWORD: saved to local" in log


def test_later_runs_restore_the_same_secret_without_saving_again(tmp_path: Path) -> None:
    first, _ = _run(tmp_path)
    generation = (tmp_path / "state" / "default" / "my-app-create" / "current").readlink()
    second, log = _run(tmp_path)
    assert second == first
    assert "generated secret DB_PASSWORD: kept in local" in log and "saved to" not in log
    assert (tmp_path / "state" / "default" / "my-app-create" / "current").readlink() == generation


def test_changing_the_length_later_keeps_the_secret(tmp_path: Path) -> None:
    first, _ = _run(tmp_path, length=16)
    assert len(first) == 16
    assert _run(tmp_path, length=64)[0] == first


@pytest.mark.parametrize("save", ["always", "on-success"])
def test_a_new_secret_is_saved_even_when_the_commands_fail(tmp_path: Path, save: str) -> None:
    # A command may have set the password on the server before it failed: losing the value
    # would leave the server's password unknown, and the next run would make another.
    with pytest.raises(CommandFailed):
        _run(tmp_path, state=f"{{ store: secret, save: {save} }}", exit_code=3)
    value = (tmp_path / "work" / "env.txt").read_text()
    assert _stored(tmp_path) == {KEY: value.encode()}
    assert _run(tmp_path)[0] == value


def test_a_dry_run_makes_a_secret_for_itself_and_saves_nothing(tmp_path: Path) -> None:
    extra = (
        "dryRun:\n  - argv: [sh, -c, 'printf %s \"$DB_PASSWORD\" > env.txt; cat > stdin.txt']\n"
        "    stdin: \"ALTER USER app PASSWORD '${{ secrets.DB_PASSWORD }}';\"\n"
    )
    value, log = _run(tmp_path, dry_run=True, extra=extra)
    assert len(value) == 32
    assert _stored(tmp_path) is None
    assert "for this run only: a dry run saves nothing" in log
    # With a state, a dry run reads the secret kept there, and still saves nothing.
    kept, _ = _run(tmp_path)
    assert _run(tmp_path, dry_run=True, extra=extra)[0] == kept


def test_removing_the_state_forgets_the_secret(tmp_path: Path) -> None:
    both = "on: { action: [configure, delete] }\n"
    state = "{ store: secret, onDelete: remove }"
    first, _ = _run(tmp_path, state=state, extra=both)
    # The delete run gets the kept secret, then removes the state, and the secret with it.
    assert _run(tmp_path, action="delete", state=state, extra=both)[0] == first
    assert _stored(tmp_path) is None
    again, _ = _run(tmp_path, state=state, extra=both)
    assert again and again != first


def test_a_kept_secret_that_is_not_text_stops_the_step_and_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    LocalStore(tmp_path / "state").save(REF, {KEY: b"\xff\xfe"}, UNCHECKED)
    with pytest.raises(StoreError) as raised:
        _run(tmp_path)
    assert "holds generated secret DB_PASSWORD, but it is not printable text of at least 8 characters" in str(
        raised.value.problems[0].message
    )
    assert _stored(tmp_path) == {KEY: b"\xff\xfe"}
    assert not (tmp_path / "work" / "env.txt").exists()


def test_a_charset_is_drawn_from_and_nothing_else() -> None:
    made = make_secret(Generate(200, "ab-"))
    assert len(made) == 200 and set(made) == {"a", "b", "-"}
    assert make_secret(Generate(32)) != make_secret(Generate(32))
    assert set(make_secret(Generate(500))) <= set(string.ascii_letters + string.digits)


@pytest.mark.parametrize(
    ("charset", "problem"),
    [
        ("aaaa", "fewer than 2 different"),
        ("ab c", "' '"),
        ("ab\tc", "'\\t'"),
        ("abcé", "'é'"),
        ("ab\x7f", "'\\x7f'"),
    ],
)
def test_a_charset_that_cannot_make_a_password_is_refused(charset: str, problem: str) -> None:
    reason = charset_problem(charset)
    assert reason is not None and problem in reason
    assert charset_problem(string.punctuation) is None


def test_a_store_override_that_would_keep_it_in_clear_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    body = """
    secrets: { DB_PASSWORD: { generate: { length: 32 } } }
    state: { store: secret }
    run: [[touch, ran]]
    """
    with pytest.raises(InvalidError) as raised:
        open_session(tmp_path, {"10-create": body}, store=StoreSpec("configmap", None))
    problem = raised.value.problems[0]
    assert "the configmap store would hold it in clear" in problem.message
    assert problem.hint is not None and "--state-store secret" in problem.hint
