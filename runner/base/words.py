"""How the runner words things for people: the name a typo meant, a path as shown."""

from __future__ import annotations

import difflib
from pathlib import Path


def closest(word: str, choices: list[str] | set[str] | frozenset[str]) -> str | None:
    """The closest valid name to a typo, for `did you mean` hints."""
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def display(path: Path) -> str:
    """A path as users should see it in messages: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)
