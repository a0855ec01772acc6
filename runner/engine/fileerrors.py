"""One-line reasons for failed file operations, shared by the workspace, state and results."""

from __future__ import annotations

import shutil


def os_reason(exc: BaseException) -> str:
    """What went wrong with a file operation, in one line (shutil.Error carries a list)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        reasons = {str(entry[-1]) for entry in exc.args[0]}
        return "; ".join(sorted(reasons))[:300]
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return str(exc)
