"""The main job, end to end on one machine: the shipped steps against a local S3 server.

    make demo

Starts an S3 server on loopback (standing in for MinIO), puts the test stand-in for
`terraform` on PATH (Terraform itself isn't installed here), and runs the shipped steps.d
as Kratix would: configure twice (the second run restores the state and changes nothing),
then the delete workflow. State goes to the local store, the default outside a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes import FAKE_BIN, S3Server  # noqa: E402

REQUEST = """\
apiVersion: workshop.kratix.io/v1
kind: App
metadata:
  name: my-app
  namespace: default
spec:
  image: nginx
"""


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text} ===\033[0m", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="runner-demo-") as tmp, S3Server() as s3:
        root = Path(tmp)
        kratix = {name: root / "kratix" / name for name in ("input", "output", "metadata")}
        for folder in kratix.values():
            folder.mkdir(parents=True)
        (kratix["input"] / "object.yaml").write_text(REQUEST)
        env = {
            **os.environ,
            **s3.env,
            "PATH": os.pathsep.join(
                [str(FAKE_BIN), str(Path(sys.executable).parent), os.environ["PATH"]]
            ),
            "RUNNER_STATE_STORE": f"local:{root / 'state'}",
            "KRATIX_PROMISE_NAME": "app",
            "KRATIX_WORKFLOW_TYPE": "resource",
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        base = [sys.executable, "-m", "runner", "run", "--steps-dir", str(REPO / "steps.d"),
                "--input", str(kratix["input"]), "--output", str(kratix["output"]),
                "--metadata", str(kratix["metadata"])]  # fmt: skip
        print(f"S3 server on {s3.url}; state in {root / 'state'}; request: my-app in default")

        stages = [
            ("configure #1: create the bucket (no state yet)", "configure"),
            ("configure #2: reconcile again (state restored, nothing changes)", "configure"),
            ("delete: destroy the bucket and remove the state", "delete"),
        ]
        for title, action in stages:
            banner(title)
            result = subprocess.run(base, env={**env, "KRATIX_WORKFLOW_ACTION": action}, cwd=root)
            print(f"--> exit {result.returncode}; buckets now: {s3.buckets() or 'none'}")
            status = kratix["metadata"] / "status.yaml"
            if action == "configure" and status.exists():
                print(
                    "--> status.yaml:\n"
                    + "".join(f"      {line}\n" for line in status.read_text().splitlines())
                )
            if result.returncode != 0:
                return result.returncode
        state_left = list((root / "state").rglob("*tfstate*"))
        print(
            f"\nState left behind: {state_left or 'none'}. The demo ran the tutorial's story end to end."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
