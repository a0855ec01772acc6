"""The contract every state store keeps (runner/state/base.py), proved for each registered store:
local in a folder, configmap and secret against the loopback API server, and the test store
(tests/stores/), which is registered as any store is. A new store joins by adding its backend
to BACKENDS; a registered store without one fails here.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.base.errors import Interrupted, InvalidError, LockHeld, StoreError
from runner.platform import interrupts
from runner.platform.log import Logger
from runner.state import NONE, STORES, StoreSpec, kinds, open_store, store_class
from runner.state.base import Loaded, StateChanged, StateRef, StateStore
from runner.state.encryption import EncryptedStore, Keys, StateKey
from runner.state.lock import RenewedLock
from runner.state.s3 import unpack_with_header
from tests.conftest import REPO, Pipeline
from tests.kubeapi import FakeKubeAPI
from tests.s3support import S3Endpoint, s3_endpoint
from tests.stores import register_test_stores

register_test_stores()

REF = StateRef("app", "my-app-state", "default", "my-app", "default")
LABELS = {
    "app.kubernetes.io/managed-by": "kratix-step-runner",
    "runner.kratix.dev/step": "app",
    "runner.kratix.dev/object-name": "my-app",
    "runner.kratix.dev/object-namespace": "default",
}


@dataclass
class Backend:
    """Where one store kind keeps states in a test, and how to read a state's labels."""

    open: Callable[[], StateStore]  # another run's store on the same states
    labels: Callable[[StateRef], dict[str, str]]


def _local(tmp: Path) -> Iterator[Backend]:
    folder = tmp / "state"

    def labels(ref: StateRef) -> dict[str, str]:
        current = folder / ref.namespace / ref.name / "current"
        return json.loads((current / "labels.json").read_text())  # type: ignore[no-any-return]

    yield Backend(lambda: open_store("local", str(folder), {}), labels)


def _kube(kind: str) -> Callable[[Path], Iterator[Backend]]:
    def backend(tmp: Path) -> Iterator[Backend]:
        with FakeKubeAPI() as api:
            environ = {"KUBECONFIG": str(api.write_kubeconfig(tmp / "kubeconfig"))}
            resource = f"{kind}s"

            def labels(ref: StateRef) -> dict[str, str]:
                obj = api.get_object(resource, ref.namespace, ref.name)
                return obj["metadata"]["labels"]  # type: ignore[no-any-return,index]

            opened: list[StateStore] = []

            def open_one() -> StateStore:
                opened.append(open_store(kind, None, environ))
                return opened[-1]

            yield Backend(open_one, labels)
            for store in opened:
                store.close()

    return backend


def _memory(tmp: Path) -> Iterator[Backend]:
    file = tmp / "memory.json"

    def labels(ref: StateRef) -> dict[str, str]:
        return json.loads(file.read_text())[f"{ref.namespace}/{ref.name}"]["labels"]  # type: ignore[no-any-return]

    yield Backend(lambda: open_store("memory", str(file), {}), labels)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    yield from s3_endpoint()


def _s3(tmp: Path, endpoint: S3Endpoint) -> Iterator[Backend]:
    bucket = endpoint.new_bucket()

    def labels(ref: StateRef) -> dict[str, str]:
        body = endpoint.get(bucket, f"states/{ref.name}")
        assert body is not None
        return unpack_with_header(body)[1]["labels"]  # type: ignore[no-any-return]

    yield Backend(lambda: open_store("s3", f"//{bucket}/states", endpoint.env()), labels)


BACKENDS: dict[str, Callable[..., Iterator[Backend]]] = {
    "local": _local,
    "configmap": _kube("configmap"),
    "secret": _kube("secret"),
    "memory": _memory,
    "s3": _s3,
}
# Every store again with state.encryption on: the layer must keep the whole contract.
KEYS = Keys(StateKey(b"k" * 32, "environment variable RUNNER_STATE_KEY"))


@pytest.fixture(params=[*kinds(), *(f"{k}+encrypted" for k in kinds())])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind, _, encrypted = request.param.partition("+")
    assert kind in BACKENDS, f"store {kind} is registered but has no backend in this suite"
    extra = [request.getfixturevalue("s3")] if kind == "s3" else []
    for plain in BACKENDS[kind](tmp_path, *extra):
        if not encrypted:
            yield plain
            continue
        yield Backend(lambda p=plain: EncryptedStore(p.open(), KEYS), plain.labels)


def test_the_schemas_store_enum_is_the_registrys_kinds_and_none() -> None:
    schema = json.loads((REPO / "runner" / "stepfile" / "step.schema.json").read_text())
    enum = schema["$defs"]["state"]["properties"]["store"]["enum"]  # spec.state.store
    product = [k for k in kinds() if STORES[k].startswith("runner.")]
    assert sorted(enum) == sorted([*product, NONE])


def test_every_registered_store_has_a_backend_here() -> None:
    assert set(kinds()) == set(BACKENDS)


def test_an_unknown_store_names_every_registered_one() -> None:
    with pytest.raises(InvalidError, match="use local") as info:
        StoreSpec.parse("nope:x")
    message = str(info.value)
    for kind in kinds():
        assert store_class(kind).usage() in message
    assert "local[:DIR]" in message and message.endswith(f"or {NONE}")
    assert StoreSpec.parse("local:/tmp/s") == StoreSpec("local", "/tmp/s")
    assert StoreSpec.parse("configmap") == StoreSpec("configmap", None)


def test_loading_nothing_is_none(backend: Backend) -> None:
    assert backend.open().load(REF) is None


def test_a_save_loads_back_byte_for_byte_in_another_store(backend: Backend) -> None:
    files = {"tfstate": b'{"version": 4}\n', "plugin.bin": bytes(range(256)), "empty": b""}
    version = backend.open().save(REF, files, expected=None)
    loaded = backend.open().load(REF)
    assert loaded == Loaded(files, version)


def test_each_save_gives_a_new_version(backend: Backend) -> None:
    store = backend.open()
    first = store.save(REF, {"count": b"1"}, expected=None)
    second = store.save(REF, {"count": b"2"}, expected=first)
    assert second != first
    assert backend.open().load(REF) == Loaded({"count": b"2"}, second)


def test_a_save_with_a_stale_version_raises_state_changed_and_keeps_the_newer(
    backend: Backend,
) -> None:
    backend.open().save(REF, {"count": b"1"})
    mine = backend.open()
    read = mine.load(REF)
    assert read is not None and read.files == {"count": b"1"}
    other = backend.open()
    other_read = other.load(REF)
    assert other_read is not None
    other.save(REF, {"count": b"2"}, expected=other_read.version)
    with pytest.raises(StateChanged, match="changed by another run"):
        mine.save(REF, {"count": b"2-from-stale-read"}, expected=read.version)
    loaded = backend.open().load(REF)
    assert loaded is not None and loaded.files == {"count": b"2"}


def test_a_save_expecting_no_state_raises_state_changed_once_there_is_one(
    backend: Backend,
) -> None:
    backend.open().save(REF, {"count": b"1"}, expected=None)
    with pytest.raises(StateChanged):
        backend.open().save(REF, {"count": b"other"}, expected=None)
    store = backend.open()
    read = store.load(REF)
    assert read is not None
    assert backend.open().remove(REF)
    with pytest.raises(StateChanged):  # removed since it was read: not recreated
        store.save(REF, {"count": b"2"}, expected=read.version)
    assert backend.open().load(REF) is None


def test_an_unchecked_save_replaces_whatever_is_stored(backend: Backend) -> None:
    backend.open().save(REF, {"count": b"1"})
    backend.open().save(REF, {"count": b"2"})
    loaded = backend.open().load(REF)
    assert loaded is not None and loaded.files == {"count": b"2"}


def test_remove_removes_the_state_and_says_whether_there_was_one(backend: Backend) -> None:
    store = backend.open()
    assert store.remove(REF) is False
    store.save(REF, {"count": b"1"})
    assert backend.open().remove(REF) is True
    assert store.load(REF) is None
    assert backend.open().load(REF) is None
    assert store.remove(REF) is False


def test_a_held_lock_keeps_other_runs_out_until_released(backend: Backend) -> None:
    store, other = backend.open(), backend.open()
    with store.lock(REF, 1) as held:
        assert held.lost_reason() is None
        assert held.describe()
        with pytest.raises(LockHeld), other.lock(REF, 0.3):
            pass
        store.save(REF, {"count": b"1"})  # saving under the lock
        assert held.lost_reason() is None
    with other.lock(REF, 1) as held:  # released: another run takes it at once
        assert held.lost_reason() is None


def test_a_signal_ends_a_lock_wait_at_once_and_leaves_the_holders_lock_alone(
    backend: Backend,
) -> None:
    store, other = backend.open(), backend.open()
    with store.lock(REF, 1) as held:
        threading.Timer(0.3, interrupts.record, (signal.SIGTERM,)).start()
        started = time.monotonic()
        try:
            with pytest.raises(Interrupted), other.lock(REF, 60):
                pytest.fail("took a held lock")
        finally:
            interrupts.forget()
        assert time.monotonic() - started < 2
        assert held.lost_reason() is None
        with pytest.raises(LockHeld), other.lock(REF, 0.3):
            pass  # still held: the interrupted wait took nothing


def test_stored_states_carry_the_runners_labels(backend: Backend) -> None:
    backend.open().save(REF, {"count": b"1"})
    assert backend.labels(REF) == LABELS


def test_a_key_the_store_refuses_is_a_store_error_and_nothing_is_saved(
    backend: Backend,
) -> None:
    store = backend.open()
    assert store.key_problem("tfstate") is None
    refused = [k for k in ("my state", "a/b", "labels.json", "") if store.key_problem(k)]
    for key in refused:
        problem = store.key_problem(key)
        assert isinstance(problem, str) and problem
        assert store.key_problem(store.suggested_key(key)) is None
        with pytest.raises(StoreError):
            store.save(REF, {"fine": b"1", key: b"2"})
        assert store.load(REF) is None


def test_names_and_namespaces_follow_the_stores_rules(backend: Backend) -> None:
    cls = type(backend.open())
    assert cls.name_problem("my-app-state") is None
    assert cls.name_problem("Bad_Name") is not None
    assert cls.namespace_problem("default") is None
    assert cls.namespace_problem("a.b") is not None


# -- a store added by registration, through `runner run` -------------------------------------

REGISTERED_RUN = (
    "import sys; from tests.stores import register_test_stores; register_test_stores(); "
    "from runner.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_with_test_stores(pipeline: Pipeline, *argv: str) -> subprocess.CompletedProcess[str]:
    """`runner VERB ...` in a process that registered the test stores first."""
    verb, rest = argv[0], list(argv[1:])
    return subprocess.run(
        [sys.executable, "-c", REGISTERED_RUN, verb, *pipeline.args(), *rest],
        cwd=pipeline.work,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_registered_store_keeps_state_between_runs(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.step(
        "counter",
        """
        state: {name: counter, files: [{path: count.txt, key: count}]}
        workdir: ../work
        run:
          - script: |
              n=$(cat count.txt 2>/dev/null || echo 0)
              echo $((n + 1)) > count.txt
              echo "count is $((n + 1))"
        """,
    )
    file = tmp_path / "memory.json"
    pipeline.env["RUNNER_STATE_STORE"] = f"memory:{file}"
    for expected in (1, 2):
        result = run_with_test_stores(pipeline, "run")
        assert result.returncode == 0, result.stderr
        assert f"count is {expected}" in result.stdout
        assert "memory default/counter" in result.stderr
    loaded = open_store("memory", str(file), {}).load(StateRef("counter", "counter", "default"))
    assert loaded is not None and loaded.files == {"count": b"2\n"}
    shown = run_with_test_stores(pipeline, "state", "show", "counter")
    assert shown.returncode == 0 and "count: 2 bytes" in shown.stdout, shown.stderr


def test_without_the_registration_the_store_is_unknown(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.step("counter", "state: {files: [{path: c.txt}]}\nworkdir: ../work\nrun: [[true]]")
    result = pipeline.run("run", "--state-store", f"memory:{tmp_path / 'm.json'}")
    assert result.returncode == 2
    assert 'unknown state store "memory:' in result.stderr
    assert "use local[:DIR], configmap, secret, s3[://BUCKET[/PREFIX]] or none" in result.stderr


# -- an expiring lock, whatever the store ------------------------------------------------------


class _Unrenewable(RenewedLock):
    """An expiring lock whose backend refuses every renewal."""

    def __init__(self, log: Logger) -> None:
        super().__init__("the test lock", duration=0.3, log=log, step="app")
        self.tries = 0

    def held(self) -> bool:
        return True

    def renew(self) -> None:
        self.tries += 1
        raise StoreError("the backend refused")


def test_an_expiring_lock_not_renewed_for_its_duration_is_lost_and_told_once() -> None:
    err = io.StringIO()
    lock = _Unrenewable(Logger("text", stream=err, out=io.StringIO()))
    lock.renewed(time.monotonic())
    lock.start_renewing()
    try:
        deadline = time.monotonic() + 20
        while lock.lost_reason() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        lock.stop_renewing()
    reason = lock.lost_reason()
    assert reason is not None and "not renewed for" in reason and "the backend refused" in reason
    assert lock.tries >= 1
    warnings = [line for line in err.getvalue().splitlines() if "lost the test lock" in line]
    assert len(warnings) == 1, err.getvalue()
