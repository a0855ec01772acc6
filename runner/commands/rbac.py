"""`runner rbac`."""

from __future__ import annotations

import argparse

from runner.errors import InvalidError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*")


def main(args: argparse.Namespace) -> int:
    raise InvalidError("runner rbac is not available yet")
