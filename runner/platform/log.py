"""What the runner prints: its own log lines and the commands' output, always masked.

Text format is for people reading pod logs; `--log-format json` gives one JSON object per line
for log pipelines. Writes are serialised because command output arrives on reader threads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from runner.platform.masking import Masker


class Logger:
    def __init__(
        self,
        fmt: str = "text",
        masker: Masker | None = None,
        stream: TextIO | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.fmt = fmt
        self.masker = masker if masker is not None else Masker()
        self.stream = stream or sys.stderr  # the runner's own lines
        self.out = out or sys.stdout  # commands' stdout, in text format
        # Reentrant: the engine's signal handler logs, and it runs in the main thread, maybe
        # while that thread holds this lock mid-line; a plain Lock would deadlock the runner.
        self._lock = threading.RLock()

    def _emit(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(text)
            stream.flush()

    def event(self, message: str, level: str = "info", **fields: Any) -> None:
        """One log line: `runner: message` in text, an object with the fields in JSON."""
        message = self.masker.mask(message)
        if self.fmt == "json":
            record = {"time": _now(), "level": level, "msg": message}
            record.update({k: _masked(self.masker, v) for k, v in fields.items() if v is not None})
            self._emit(self.stream, json.dumps(record, ensure_ascii=False) + "\n")
            return
        prefix = f"[{fields['step']}] " if fields.get("step") else ""
        marker = {"error": "error: ", "warning": "warning: "}.get(level, "")
        self._emit(self.stream, f"runner: {prefix}{marker}{message}\n")

    def info(self, message: str, **fields: Any) -> None:
        self.event(message, "info", **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.event(message, "warning", **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.event(message, "error", **fields)

    def output(self, stream_name: str, text: str, **fields: Any) -> None:
        """Command output, already masked by the caller's StreamMasker (line at a time).

        In JSON each line is a record like every other (`time`, `level`, `msg`) with the
        `stream` it came from.
        """
        text = _printable(text)
        if self.fmt == "json":
            extra = {k: v for k, v in fields.items() if v is not None}
            lines = [
                json.dumps(
                    {"time": _now(), "level": "info", "msg": line, "stream": stream_name, **extra},
                    ensure_ascii=False,
                )
                for line in text.splitlines()
            ]
            if lines:
                self._emit(self.stream, "\n".join(lines) + "\n")
            return
        self._emit(self.out if stream_name == "stdout" else self.stream, text)


def _printable(text: str) -> str:
    """Text that any UTF-8 stream accepts: command output is decoded with surrogateescape
    (so undecodable bytes survive for masking and capture files); print those as U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _masked(masker: Masker, value: Any) -> Any:
    return masker.mask(value) if isinstance(value, str) else value


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def seconds(duration: float) -> str:
    """A duration for people: 0.42s, 12.3s, 2m05s."""
    if duration < 60:
        return f"{duration:.2f}s" if duration < 10 else f"{duration:.1f}s"
    minutes, rest = divmod(int(duration), 60)
    return f"{minutes}m{rest:02d}s"
