"""Benchmark: `runner validate` against `check-jsonschema` on the same generated step files.

    .venv/bin/python bench/validate.py [--files N] [--repeat R] [--keep DIR]

Generates N varied, realistic step files (all valid), then the same N with about 10% broken
(schema errors, bad template references, bad queries, secrets in templates...), and times,
alternating, R runs of each tool on each set:

    runner validate DIR
    check-jsonschema --schemafile schemas/step.schema.json FILE...

Both see the same files and the same schema; `runner validate` also checks the semantic rules
(templates, queries, defaults, unique names), which check-jsonschema can't. The goal: runner
is no slower. Prints the medians as a table and whether the goal is met.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "step.schema.json"
BIN = Path(sys.executable).parent

WORDS = ["bucket", "db", "cache", "queue", "app", "dns", "cert", "topic", "vault", "mesh"]
TOOLS = ["terraform", "kubectl", "helm", "aws", "mc", "jq"]


def step_text(i: int, rng: random.Random) -> str:
    """One realistic, valid step file; the fields used vary with `rng`."""
    word = rng.choice(WORDS)
    name = f"{word}-{i:05d}"
    extra = rng.sample(["tier", "size", "region", "labels", "owner"], rng.randint(0, 4))
    inputs = ["name", "namespace", *extra]
    lines = [
        "# yaml-language-server: $schema=../schemas/step.schema.json",
        "apiVersion: runner.kratix.dev/v1alpha1",
        "kind: Step",
        "metadata:",
        f"  name: {name}",
        f"  description: Manage the {word} for request number {i}.",
        "spec:",
    ]
    delete = False
    if rng.random() < 0.8:
        delete = rng.random() < 0.3
        action = "delete" if delete else rng.choice(["[configure]", "configure"])
        lines += ["  on:", f"    workflow: {rng.choice(['resource', 'promise'])}",
                  f"    action: {action}"]
        if rng.random() < 0.3:
            lines.append(f"    promise: {word}")
    lines.append("  inputs:")
    for item in inputs:
        if item == "name":
            lines.append('    name: { query: .metadata.name, pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" }')
        elif item == "namespace":
            lines.append("    namespace: { query: .metadata.namespace, default: default }")
        elif item == "tier":
            lines.append("    tier: { query: .spec.tier, default: small, enum: [small, large] }")
        elif item == "size":
            lines.append("    size: { query: '.spec.size // 10', type: integer }")
        elif item == "region":
            lines.append('    region: { query: \'.metadata.labels."topology.kubernetes.io/region"\', '
                         "default: eu-west-1 }")
        elif item == "labels":
            lines.append('    labels: { jmespath: "metadata.labels", type: object, required: false }')
        else:
            lines.append("    owner: { jmespath: \"spec.owners[0].name || 'nobody'\" }")
    secrets = rng.sample(["MINIO_USER", "MINIO_PASSWORD", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"],
                         rng.randint(0, 3))
    if secrets:
        lines.append("  secrets:")
        lines += [f"    {s}: {{ env: {s} }}" for s in secrets]
        if rng.random() < 0.3:
            lines.append("    CA_BUNDLE: { file: /var/run/secrets/ca.crt, required: false }")
    lines += ["  env:", '    TF_IN_AUTOMATION: "1"',
              '    TF_VAR_name: "${{ inputs.name }}.${{ inputs.namespace }}"']
    if "tier" in inputs:
        lines.append('    TF_VAR_tier: "${{ inputs.tier }}"')
    lines.append(f"  workdir: ../terraform/{word}")
    tool = rng.choice(TOOLS)
    if tool == "terraform" or rng.random() < 0.5:
        lines += [
            "  copyWorkdir: true",
            "  state:",
            f"    store: {rng.choice(['configmap', 'secret', 'local'])}",
            '    name: "${{ inputs.name }}-' + word + '-state"',
            "    namespace: \"${{ kratix.object.namespace }}\"",
            "    files:",
            "      - { path: terraform.tfstate, key: tfstate }",
            f"    save: {rng.choice(['always', 'on-success'])}",
        ]
        if delete:
            lines.append("    onDelete: remove")
    lines.append("  run:")
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.6:
            lines.append(f"    - [{tool}, {rng.choice(['init', 'apply', 'plan', 'get', 'sync'])}, "
                         f"-input=false, \"--name=${{{{ inputs.name }}}}\"]")
        elif kind < 0.85:
            lines += [f"    - argv: [{tool}, output, -json]", "      stdout: outputs.json",
                      f"      timeout: {rng.randint(1, 30)}m"]
        else:
            lines += ["    - script: |", '        echo "working on $INPUT_NAME"',
                      "        test -n \"$INPUT_NAMESPACE\"", "      continueOnError: true"]
    if rng.random() < 0.5:
        lines += ["  dryRun:", f"    - [{tool}, plan, -input=false]"]
    if rng.random() < 0.4:
        lines += ["  output:", "    - { from: manifests/, to: " + word + "/ }"]
    lines += ["  status:", f'    message: "{word} ${{{{ inputs.name }}}} is ready"']
    if rng.random() < 0.5:
        lines.append("    endpoint: { file: outputs.json, query: .url.value }")
    lines.append(f"  timeout: {rng.randint(1, 60)}m")
    return "\n".join(lines) + "\n"


# (what it breaks, old text, new text): each applies to any generated step.
BREAKAGES = [
    ("unknown field", "  workdir: ", "  wrokdir: "),
    ("bad enum", "kind: Step", "kind: Stpe"),
    ("bad DNS name", "  name: ", "  name: Bad_"),
    ("unknown input", "${{ inputs.name }}.", "${{ inputs.nmae }}."),
    ("secret in a template", 'TF_IN_AUTOMATION: "1"', 'TF_IN_AUTOMATION: "${{ secrets.X }}"'),
    ("bad query", "query: .metadata.name,", "query: .metadata..name,"),
    ("wrong type", "  workdir: ../terraform/", "  copyWorkdir: maybe\n  workdir: ../terraform/"),
    ("bad duration", "  timeout: ", "  timeout: x"),
    ("malformed YAML", "kind: Step\n", "kind: [Step\n"),
]


def generate(folder: Path, count: int, broken_share: float, seed: int) -> tuple[list[Path], int]:
    """Write `count` step files; about `broken_share` of them broken. Returns (files, broken)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    files, broken = [], 0
    for i in range(count):
        text = step_text(i, rng)
        if rng.random() < broken_share:
            _, old, new = rng.choice(BREAKAGES)
            text = text.replace(old, new, 1)
            broken += 1
        path = folder / f"{i:05d}-step.yaml"
        path.write_text(text)
        files.append(path)
    return files, broken


def timed(argv: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    return time.perf_counter() - start, proc.returncode, proc.stdout + proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="step files per set (1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each tool, median (5)")
    parser.add_argument("--keep", metavar="DIR", help="generate into DIR and keep the files")
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of --repeat")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    runner = shutil.which("runner", path=str(BIN)) or "runner"
    checker = shutil.which("check-jsonschema", path=str(BIN))
    if checker is None:
        print("check-jsonschema is not installed: pip install check-jsonschema", file=sys.stderr)
        return 1
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-validate-"))
    rows = []
    try:
        for label, share in (("all valid", 0.0), ("~10% invalid", 0.1)):
            folder = root / label.replace(" ", "-").replace("~", "").replace("%", "pct")
            if folder.exists():
                shutil.rmtree(folder)
            files, broken = generate(folder, args.files, share, seed=42)
            commands = {
                "runner validate": [runner, "validate", str(folder)],
                "check-jsonschema": [checker, "--schemafile", str(SCHEMA), *map(str, files)],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            codes: dict[str, set[int]] = {name: set() for name in commands}
            outputs: dict[str, str] = {}
            for _ in range(args.repeat):  # alternate, so drift hits both alike
                for name, argv in commands.items():
                    seconds, code, output = timed(argv)
                    times[name].append(seconds)
                    codes[name].add(code)
                    outputs[name] = output
            expected = {"runner validate": {2 if broken else 0},
                        "check-jsonschema": {1 if broken else 0}}
            for name in commands:
                if codes[name] != expected[name]:
                    print(f"warning: {name} on {label} exited {sorted(codes[name])}, expected "
                          f"{sorted(expected[name])}:\n{outputs[name][-2000:]}", file=sys.stderr)
            runner_median = statistics.median(times["runner validate"])
            for name in commands:
                median = statistics.median(times[name])
                rows.append((label, len(files), broken, name, median, len(files) / median,
                             median / runner_median))
            if broken:
                found = {
                    name: len({f for f in files if str(f) in outputs[name]}) for name in commands
                }
                print(f"{label}: {broken} files broken; flagged by runner validate: "
                      f"{found['runner validate']}, by check-jsonschema: {found['check-jsonschema']}"
                      " (it sees only schema errors)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    header = f"{'set':<14} {'files':>5} {'broken':>6}  {'tool':<17} {'median s':>8} {'files/s':>8} " \
             f"{'vs runner':>9}"
    print(header)
    print("-" * len(header))
    for label, count, broken, name, median, rate, ratio in rows:
        print(f"{label:<14} {count:>5} {broken:>6}  {name:<17} {median:>8.3f} {rate:>8.0f} "
              f"{ratio:>8.2f}x")
    met = all(
        rows[i][4] <= rows[i + 1][4] for i in range(0, len(rows), 2)
    )  # runner's row comes first in each pair
    print()
    print(f"goal (runner validate no slower than check-jsonschema): {'met' if met else 'NOT met'}")
    if args.json:  # the "all valid" set, for bench/run.py's table
        runner_row, check_row = rows[0], rows[1]
        print(json.dumps({"files": runner_row[1], "runner_seconds": runner_row[4],
                          "check_jsonschema_seconds": check_row[4]}))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
