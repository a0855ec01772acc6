#!/usr/bin/env python3
"""Masking speed: the working tree's runner.platform.masking against another revision's, side by side.

    .venv/bin/python bench/masking.py [--ref REV] [--mib N] [--runs N]

Figures (median of --runs): masking N MiB (default 10) of terraform-like output with 5 secrets
registered, fed line by line through a StreamMasker (as the runner does with a command's
output) and in one mask() call; and a ~200 KB PEM CA bundle registered as a secret (add() plus
the first mask(), which compiles). REV (default: HEAD) is loaded from git into a scratch module,
so the comparison needs no second checkout. Prints a table; exits 0.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
SECRETS = [
    "Tr0ub4dor&3<x>",
    "ghp_4f7K9qLmN2xZ8vB1cD3eF5gH7jK9lM0nP2qR",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "it's a s3cret: pass",
]


def terraform_like(size: int, rng: random.Random) -> str:
    """Lines like a terraform plan and apply: resources, attributes, ids, hashes, some base64."""
    lines: list[str] = []
    total = 0
    n = 0
    while total < size:
        n += 1
        kind = n % 9
        if kind == 0:
            line = f"  # aws_s3_bucket.bucket_{n} will be created"
        elif kind == 1:
            line = f'  + resource "aws_s3_bucket" "bucket_{n}" {{'
        elif kind == 2:
            line = "      + arn                         = (known after apply)"
        elif kind == 3:
            line = f'      + bucket                      = "team-{n}-artifacts"'
        elif kind == 4:
            line = f'      + id                          = "{rng.randbytes(8).hex()}"'
        elif kind == 5:
            line = f'      + tags                        = {{ "Name" = "b{n}", "Env" = "prod" }}'
        elif kind == 6:
            line = f"aws_s3_bucket.bucket_{n}: Creation complete after 2s [id=team-{n}-artifacts]"
        elif kind == 7:
            line = f'      + policy = "{base64.b64encode(rng.randbytes(24)).decode()}"'
        else:
            line = "    }"
        lines.append(line + "\n")
        total += len(line) + 1
    return "".join(lines)


def ca_bundle(rng: random.Random) -> str:
    return "".join(
        "-----BEGIN CERTIFICATE-----\n"
        + "\n".join(base64.b64encode(rng.randbytes(48)).decode() for _ in range(20))
        + "\n-----END CERTIFICATE-----\n"
        for _ in range(150)
    )


_WHERE = ("runner/masking.py", "runner/masking", "runner/platform/masking")


def load(ref: str | None) -> ModuleType:
    """runner.platform.masking of the working tree (ref None) or of a git revision."""
    if ref is None:
        import runner.platform.masking

        return runner.platform.masking
    scratch = Path(tempfile.mkdtemp(prefix="masking-bench-"))
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref, *_WHERE],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listing:
        # runner/masking.py, runner/masking/X.py (before the layers), runner/platform/masking/X.py
        inside = Path(name).parent.name == "masking"
        target = scratch / "old" / ("masking" if inside else "") / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(
            ["git", "show", f"{ref}:{name}"], cwd=REPO, capture_output=True, check=True
        ).stdout
        for module in (b"runner.platform.masking", b"runner.masking"):
            blob = blob.replace(module, b"old_masking")
        target.write_bytes(blob)
    package = scratch / "old" / "masking"
    path = package / "__init__.py" if package.is_dir() else scratch / "old" / "masking.py"
    spec = importlib.util.spec_from_file_location(
        "old_masking", path, submodule_search_locations=[str(package)] if package.is_dir() else None
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_masking"] = module
    spec.loader.exec_module(module)
    return module


def once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(old: list[Callable[[], object]], new: list[Callable[[], object]], runs: int):
    """Median seconds of each figure, before and now, runs alternating so load hits both."""
    for before, now in zip(old, new, strict=True):
        pairs = [(once(before), once(now)) for _ in range(runs)]
        yield statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)


def figures(
    module: ModuleType, text: str, lines: list[str], bundle: str
) -> list[Callable[[], object]]:
    masker = module.Masker()
    for i, secret in enumerate(SECRETS):
        masker.add(f"S{i}", secret)
    masker.mask("warm up")

    def stream() -> None:
        s = masker.stream()
        for line in lines:
            s.feed(line)
        s.flush()

    def bundle_masker() -> None:
        m = module.Masker()
        m.add("CA", bundle)
        m.mask("x")

    big = module.Masker()
    big.add("CA", bundle)
    big.mask("x")
    wrapped = base64.encodebytes(random.Random(3).randbytes(len(text) // 40)).decode()
    wrapped_lines = wrapped.splitlines(keepends=True)

    def stream_wrapped() -> None:
        s = big.stream()
        for line in wrapped_lines:
            s.feed(line)
        s.flush()

    escaped = text[: len(text) // 10].replace('"', '\\"')

    return [
        stream,
        lambda: masker.mask(text),
        bundle_masker,
        lambda: big.mask(text[: len(text) // 10]),
        stream_wrapped,
        lambda: masker.mask(escaped),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="the revision to compare with (HEAD)")
    parser.add_argument("--mib", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    rng = random.Random(17)
    text = terraform_like(int(args.mib * 1024 * 1024), rng)
    lines = text.splitlines(keepends=True)
    bundle = ca_bundle(rng)
    new = figures(load(None), text, lines, bundle)
    old = figures(load(args.ref), text, lines, bundle)
    names = [
        f"{args.mib:g} MiB terraform-like output, 5 secrets, StreamMasker line by line",
        f"{args.mib:g} MiB terraform-like output, 5 secrets, one mask()",
        f"CA bundle ({len(bundle) // 1024} KiB) as a secret: add() and compile",
        f"{args.mib / 10:g} MiB output masked with the CA bundle registered",
        f"{args.mib / 30:.2g} MiB of base64 wrapped at 76, streamed, CA bundle registered",
        f'{args.mib / 10:g} MiB of JSON-escaped output (\\" everywhere), 5 secrets, one mask()',
    ]
    print(f"masking bench: median of {args.runs} runs; {args.ref} = before, working tree = now")
    print(f"{'':74} {'before':>9} {'now':>9} {'ratio':>7}")
    for name, (a, b) in zip(names, interleaved(old, new, args.runs), strict=True):
        print(f"{name:74} {a:8.3f}s {b:8.3f}s {b / a:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
