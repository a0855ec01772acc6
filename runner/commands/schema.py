"""`runner schema`: print the step file JSON Schema."""

from __future__ import annotations

import argparse
import sys

from runner.spec.schema import schema_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0
