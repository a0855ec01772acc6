"""How much argv and environment Linux lets a command start with, and what to say when a
command would get more.

execve(2) refuses (E2BIG, "Argument list too long") a command whose strings are too big: one
argument or `NAME=value` string may hold at most MAX_ARG_STRLEN bytes (32 pages, 128 KiB, the
NUL included), and all of them together, with a pointer each, at most a quarter of the stack
limit (RLIMIT_STACK), capped at 6 MiB and never below 128 KiB (fs/exec.c bprm_stack_limits).
The runner checks before starting a command, so the error names the variables and arguments
that are too big (never their values) instead of a bare E2BIG.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping, Sequence

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MAX_ARG_STRLEN = 32 * _PAGE  # one argv or environment string, its NUL included
_STK_LIM = 8 << 20  # the kernel's default stack limit: the total is capped at 3/4 of it
_ARG_MAX = 32 * _PAGE  # ... and never below this
_POINTER = 8
# Room for what execve copies besides argv and env (the program's path), and for the
# difference between kernels: a command that comes this close is refused by us, not by Linux.
_MARGIN = 8 * 1024


def total_limit() -> int:
    """The bytes argv and environment strings (with their pointers) may take together."""
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    stack = _STK_LIM if soft == resource.RLIM_INFINITY else soft
    return max(min(_STK_LIM // 4 * 3, stack // 4), _ARG_MAX) - _MARGIN


def env_string_size(name: str, value: str) -> int:
    """The bytes `NAME=value` takes in a command's environment, NUL included."""
    return len(os.fsencode(name)) + len(os.fsencode(value)) + 2


def fits_env(name: str, value: str) -> bool:
    """Whether Linux can pass one environment variable on: small enough, and no NUL byte
    (which ends a C string: no command could be started with it)."""
    return "\0" not in value and env_string_size(name, value) <= MAX_ARG_STRLEN


def size_text(size: int) -> str:
    """`200.0 KiB`, `2.5 MiB`."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1 << 20:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1 << 20):.1f} MiB"


def too_big(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """Why Linux would refuse to start `argv` with `env`, naming the biggest items; None if
    it fits."""
    items = [(f"argv[{i}]", len(os.fsencode(a)) + 1) for i, a in enumerate(argv)]
    items += [(f"env {k}", env_string_size(k, v)) for k, v in env.items()]
    single = [(what, size) for what, size in items if size > MAX_ARG_STRLEN]
    if single:
        single.sort(key=lambda item: -item[1])
        named = ", ".join(f"{what} ({size_text(size)})" for what, size in single[:5])
        return (
            f"too large to start: {named}; Linux passes at most "
            f"{size_text(MAX_ARG_STRLEN)} in one argument or environment variable"
        )
    total = sum(size for _, size in items) + _POINTER * (len(items) + 1)
    limit = total_limit()
    if total <= limit:
        return None
    items.sort(key=lambda item: -item[1])
    named = ", ".join(f"{what} ({size_text(size)})" for what, size in items[:5])
    return (
        f"too large to start: its arguments and environment take {size_text(total)}, and "
        f"Linux passes at most {size_text(limit)} (a quarter of the stack limit); the largest: "
        f"{named}"
    )
