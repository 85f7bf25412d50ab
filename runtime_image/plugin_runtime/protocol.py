"""The wire protocol on the container's real stdout: exactly one JSON object per line.

Two kinds of lines are written:

* log records ``{"level", "time", "msg", "stream"}`` where ``level`` is one of
  DEBUG/INFO/WARNING/ERROR/CRITICAL, ``time`` is UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` and
  ``stream`` is ``logger``, ``stdout`` or ``stderr``;
* control lines ``{"control": "handler_started", "handler", "time"}`` and
  ``{"control": "handler_finished", "ok", "time"}``.

:class:`ProtocolWriter` is the only code that touches the protocol file descriptor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any, BinaryIO

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "***"


def utc_timestamp(created: float | None = None) -> str:
    """Format a POSIX time (default: now) as ``2026-11-27T03:40:00.123Z``."""
    millis = int((time.time() if created is None else created) * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def level_name(levelno: int) -> str:
    """Map any numeric logging level (custom ones included) to one of :data:`LEVELS`."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class ProtocolWriter:
    """Thread-safe writer of protocol lines to a binary stream (the real fd 1).

    Each line is encoded once and written with a single ``write`` + ``flush`` under one
    lock, so lines from different threads never interleave. Registered secrets are replaced
    by ``***`` in every log message. Write errors (the reader went away) are
    swallowed: the process cannot report them anywhere else.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._broken = False

    def add_secret(self, secret: str) -> None:
        """Never let ``secret`` appear in a log message written after this call."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def record(self, level: str, msg: str, stream: str, created: float | None = None) -> None:
        """Write one log record; ``msg`` may span several lines and stays one record."""
        self.emit(
            {
                "level": level,
                "time": utc_timestamp(created),
                "msg": self.redact(msg),
                "stream": stream,
            }
        )

    def control(self, name: str, **fields: Any) -> None:
        """Write one control line ``{"control": name, **fields, "time": ...}``."""
        self.emit({"control": name, **fields, "time": utc_timestamp()})

    def emit(self, obj: dict[str, Any]) -> None:
        """Serialise ``obj`` as one JSON line and write it atomically."""
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        data = line.encode("utf-8", "backslashreplace")
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                self._broken = True

    def close(self) -> None:
        """Flush, then write nothing more: the process may exit without cutting a line
        another thread is writing (it finishes first; later lines are dropped)."""
        with self._lock:
            if not self._broken:
                with contextlib.suppress(OSError, ValueError):
                    self._stream.flush()
            self._broken = True
