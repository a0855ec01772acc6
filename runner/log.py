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

from runner.masking import Masker


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
        self._lock = threading.Lock()

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
        """Command output, already masked by the caller's StreamMasker (line at a time)."""
        if self.fmt == "json":
            for line in text.splitlines():
                record = {"time": _now(), "level": "info", "stream": stream_name, "line": line}
                record.update({k: v for k, v in fields.items() if v is not None})
                self._emit(self.stream, json.dumps(record, ensure_ascii=False) + "\n")
            return
        self._emit(self.out if stream_name == "stdout" else self.stream, text)


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
