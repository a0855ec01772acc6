"""A pipeline pod's filesystem, without Docker: an overlay of `/` in a private mount namespace.

`PodView.run(argv, env)` runs `argv` the way a container of the runner image runs it in a
Kratix pipeline pod: chrooted into a root that is this machine's `/` seen through an overlay
(so the venv's interpreter and the checkout are there, and nothing written lands on the real
`/`), with the image's files copied in (`/steps.d`, `/terraform`), the pod's volumes bind-mounted
from host folders the test reads and writes (`/kratix/{input,output,metadata}`, the service
account at `/var/run/secrets/kubernetes.io/serviceaccount`, read-only), a fresh tmpfs on `/tmp`,
the Dockerfile's `runner` user (uid 10001) and its WORKDIR, and exactly the environment given.

How: `unshare -m --propagation private` runs this file as a script (standard library only), which
mounts a tmpfs on a scratch folder (an overlay's upper dir may not sit inside its lower tree),
an overlay `lowerdir=/` on it, binds /proc, /dev and /sys, sets up the files and volumes, then
chroots, drops to the runner user and execs `argv`: the same process, so exit codes, signals
and timeouts are the command's own. The mounts vanish with the namespace when it exits.

Setup that this machine doesn't allow (not root, no mount namespaces, no overlayfs) exits with
SETUP_FAILED and a line starting with UNAVAILABLE on stderr; `PodView.probe()` returns that
reason so tests can skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETUP_FAILED = 125  # as `docker run` says when the container couldn't be started
UNAVAILABLE = "podroot: unavailable:"
RUNNER_UID = 10001  # the Dockerfile's `useradd --uid 10001 ... runner` and `USER 10001:10001`
RUNNER_HOME = "/home/runner"  # its WORKDIR
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# What must never appear on the real root because of a pod view (the runner uses /steps.d when
# it exists, so a leak would change every other test on this machine).
POD_ONLY_PATHS = ("/kratix", "/steps.d", "/terraform", "/run/secrets/kubernetes.io")


@dataclass
class PodView:
    """One pod's view, its host-side volume folders under `base` (e.g. a test's tmp_path)."""

    base: Path
    image: Mapping[str, Path] = field(default_factory=dict)  # path in the image -> source folder
    uid: int = RUNNER_UID
    workdir: str = RUNNER_HOME
    visible: Sequence[Path] = ()  # host paths the pod must see (the interpreter, the checkout)

    def __post_init__(self) -> None:
        for folder in (self.input, self.output, self.metadata):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # emptyDir volumes are world-writable
        self.serviceaccount.mkdir(parents=True, exist_ok=True)

    @property
    def input(self) -> Path:
        return self.base / "kratix" / "input"

    @property
    def output(self) -> Path:
        return self.base / "kratix" / "output"

    @property
    def metadata(self) -> Path:
        return self.base / "kratix" / "metadata"

    @property
    def serviceaccount(self) -> Path:
        return self.base / "serviceaccount"

    def mount_service_account(self, token: str, ca_pem: str, namespace: str) -> None:
        """The projected volume a pod's service account gets (token, ca.crt, namespace)."""
        for name, text in (("token", token), ("ca.crt", ca_pem), ("namespace", namespace)):
            path = self.serviceaccount / name
            path.write_text(text)
            path.chmod(0o644)

    def volumes(self) -> dict[str, tuple[str, bool]]:
        """Pod path -> (host folder, read-only)."""
        return {
            "/kratix/input": (str(self.input), False),
            "/kratix/output": (str(self.output), False),
            "/kratix/metadata": (str(self.metadata), False),
            SERVICE_ACCOUNT: (str(self.serviceaccount), True),
        }

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs argv as the pod's container would; output captured as text."""
        scratch = Path(tempfile.mkdtemp(prefix="podroot-", dir=self.base))
        spec = {
            "scratch": str(scratch),
            "image": {dest: str(src) for dest, src in self.image.items()},
            "volumes": self.volumes(),
            "visible": [str(p) for p in self.visible],
            "uid": self.uid,
            "workdir": self.workdir,
            "argv": list(argv),
            "env": dict(env),
        }
        spec_file = scratch / "spec.json"
        spec_file.write_text(json.dumps(spec))
        try:
            unshare = shutil.which("unshare") or "unshare"
            command = [unshare, "-m", "--propagation", "private"]
            command += [sys.executable, "-I", str(Path(__file__).resolve()), str(spec_file)]
            return subprocess.run(
                command,
                env={"PATH": os.environ.get("PATH", os.defpath)},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def probe(self) -> str | None:
        """None when pod views work here; the reason when this machine doesn't allow them.

        Raises AssertionError when the view is built but isn't what it should be (a bug here,
        not a missing privilege)."""
        if shutil.which("unshare") is None:
            return "no `unshare` command"
        if os.geteuid() != 0:
            return "not root (mount namespaces, mounts and chroot need it)"
        check = (
            "import os, sys; uid, cwd, *folders = sys.argv[1:]; "
            "assert os.getuid() == int(uid), os.getuid(); "
            "assert os.getcwd() == cwd, os.getcwd(); "
            "assert all(os.path.isdir(f) for f in folders), folders; "
            f"open('{SERVICE_ACCOUNT}/token').close(); "
            "open('/tmp/probe', 'w').close(); "
            "open('/kratix/output/probe', 'w').close()"
        )
        if not (self.serviceaccount / "token").exists():
            self.mount_service_account("probe", "", "default")
        argv = [sys.executable, "-I", "-c", check, str(self.uid), self.workdir, *self.image]
        done = self.run(argv, {"PATH": "/usr/bin:/bin"}, timeout=30)
        if done.returncode == SETUP_FAILED and UNAVAILABLE in done.stderr:
            return done.stderr[done.stderr.index(UNAVAILABLE) :].strip().splitlines()[0]
        if done.returncode != 0 and done.stderr.startswith("unshare:"):
            # e.g. "unshare: unshare failed: Operation not permitted"
            return done.stderr.strip().splitlines()[0]
        written = (self.output / "probe").exists()
        (self.output / "probe").unlink(missing_ok=True)
        assert done.returncode == 0 and written, (
            f"the pod view is broken ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )
        return None


# --- inside the new mount namespace (run as a script: standard library only) -------------------


class SetupError(Exception):
    pass


def _mount(*args: str) -> None:
    """A mount this machine may refuse (no privilege, no such filesystem): UNAVAILABLE then."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise SetupError(f"{UNAVAILABLE} no `mount` command ({exc})") from None
    if done.returncode != 0:
        why = done.stderr.strip() or f"exit {done.returncode}"
        raise SetupError(f"{UNAVAILABLE} mount {' '.join(args)}: {why}")


def _inside(root: str, path: str, make: bool = True) -> str:
    """`path` as the chrooted process will resolve it (symlinks such as /var/run -> /run are
    followed within `root`, never on the host), created if asked; returned prefixed by root."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child chroots, so that nothing it resolves or creates escapes root
        code = 1
        try:
            os.close(read)
            os.chroot(root)
            os.chdir("/")
            if make:
                os.makedirs(path, exist_ok=True)
            os.write(write, os.path.realpath(path).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        resolved = answer.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not resolved.startswith("/"):
        raise SetupError(f"can't make {path} inside the pod's root")
    return root + resolved


def _overlay_root(scratch: str) -> str:
    tmpfs = os.path.join(scratch, "fs")
    os.mkdir(tmpfs)
    _mount("-t", "tmpfs", "-o", "mode=0755", "podroot", tmpfs)
    upper, work, root = (os.path.join(tmpfs, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d)
    _mount("-t", "overlay", "-o", f"lowerdir=/,upperdir={upper},workdir={work}", "podroot", root)
    return root


def _make_visible(root: str, paths: Sequence[str], uid: int) -> None:
    """Host paths on other filesystems than / (an overlay shows only /'s own files) or under
    /tmp (the pod's /tmp is a fresh tmpfs) are bound in, and every folder above them is made traversable for the pod's user (in the
    overlay only: a chmod there copies the folder's metadata up, the host's stays)."""
    root_dev = os.stat("/").st_dev
    for path in paths:
        # The pod gets a fresh /tmp, so a checkout or venv under /tmp (CI clones) is bound too.
        under_tmp = os.path.abspath(path) == "/tmp" or os.path.abspath(path).startswith("/tmp/")
        if under_tmp or os.stat(path).st_dev != root_dev:
            _mount("--rbind", path, _inside(root, path))
        if uid == 0:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        while folder != "/":
            inner = root + folder
            mode = os.stat(inner).st_mode
            if not mode & 0o001:
                os.chmod(inner, (mode & 0o7777) | 0o001)
            folder = os.path.dirname(folder)
        if not os.path.exists(root + path):
            raise SetupError(f"{path} is not visible inside the pod's root")


def _add_user(root: str, uid: int, home: str) -> None:
    """The Dockerfile's `useradd --uid 10001 --user-group ... runner`, in the overlay."""
    if uid == 0:
        return
    for name, line in (
        ("passwd", f"runner:x:{uid}:{uid}::{home}:/usr/sbin/nologin\n"),
        ("group", f"runner:x:{uid}:\n"),
    ):
        path = Path(_inside(root, f"/etc/{name}", make=False))
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if not any(entry.split(":")[2:3] == [str(uid)] for entry in text.splitlines()):
            separator = "\n" if text and not text.endswith("\n") else ""
            path.write_text(text + separator + line, encoding="utf-8")


def build(spec: dict[str, Any]) -> str:
    root = _overlay_root(spec["scratch"])
    for pseudo in ("/proc", "/dev", "/sys"):
        _mount("--rbind", pseudo, _inside(root, pseudo))
    _mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", _inside(root, "/tmp"))
    uid = int(spec["uid"])
    _make_visible(root, spec["visible"], uid)
    for dest, src in spec["image"].items():  # COPY src/ dest/: root-owned, replacing what's there
        target = _inside(root, dest)
        shutil.rmtree(target)
        shutil.copytree(
            src, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    _add_user(root, uid, spec["workdir"])
    workdir = _inside(root, spec["workdir"])
    os.chown(workdir, uid, uid)
    for dest, (src, read_only) in spec["volumes"].items():
        target = _inside(root, dest)
        _mount("--bind", src, target)
        if read_only:
            _mount("-o", "remount,bind,ro", target)
    return root


def enter(root: str, spec: dict[str, Any]) -> None:
    """chroot, become the image's user, exec: the container's process from here on."""
    uid = int(spec["uid"])
    try:
        os.chroot(root)
        if uid != 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    except PermissionError as exc:
        print(f"{UNAVAILABLE} chroot or setuid refused ({exc})", file=sys.stderr)
        os._exit(SETUP_FAILED)
    os.chdir(spec["workdir"])
    argv, env = spec["argv"], spec["env"]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:  # as a container runtime says it: the command can't be started
        print(f"podroot: exec {argv[0]}: {exc}", file=sys.stderr)
        os._exit(127)


def main(args: list[str]) -> int:
    spec = json.loads(Path(args[0]).read_text())
    if os.geteuid() != 0:
        print(f"{UNAVAILABLE} not root (mounts and chroot need it)", file=sys.stderr)
        return SETUP_FAILED
    try:
        root = build(spec)
    except (SetupError, OSError) as exc:
        message = str(exc)
        if not message.startswith(UNAVAILABLE):
            message = f"podroot: setup failed: {message}"
        print(message, file=sys.stderr)
        return SETUP_FAILED
    enter(root, spec)
    return 127  # not reached: enter() execs or exits


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
