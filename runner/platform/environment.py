"""The process's world as the commands see it: environment variables, standard streams, folder.

`cli.main` takes one (and builds it from the process when not given), so nothing below it reads
`os.environ` or writes `sys.stdout`/`sys.stderr` itself, and a test can run a command in process
with a fake environment and captured streams, as httpie's tests do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Environment:
    environ: Mapping[str, str]
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    # Informational: relative paths still resolve against the process's folder (messages print
    # them relative to it too), so an in-process caller changes folder to move them.
    cwd: Path

    @classmethod
    def from_process(cls) -> Environment:
        """The real process's environment variables, standard streams and folder."""
        return cls(os.environ, sys.stdin, sys.stdout, sys.stderr, _process_folder())

    def write_bytes(self, data: bytes) -> None:
        """Raw bytes on stdout (a state file as stored): through its binary buffer when it has
        one, else as text with undecodable bytes kept as surrogates."""
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:
            self.stdout.write(data.decode("utf-8", "surrogateescape"))
            return
        self.stdout.flush()  # text written before stays before the bytes
        buffer.write(data)


def _process_folder() -> Path:
    # A command started in a folder since removed still runs (`runner schema` needs no folder).
    try:
        return Path.cwd()
    except OSError:
        return Path(os.curdir)
