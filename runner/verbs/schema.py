"""`runner schema`: print the step file JSON Schema."""

from __future__ import annotations

import argparse

from runner.platform.environment import Environment
from runner.stepfile.schema import schema_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace, env: Environment) -> int:
    env.stdout.write(schema_text())
    return 0
