"""The wire protocol on the container's real stdout: exactly one JSON object per line.

Two kinds of lines are written:

* log records ``{"level", "time", "msg", "stream"}`` where ``level`` is one of
  DEBUG/INFO/WARNING/ERROR/CRITICAL, ``time`` is UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ`` and
  ``stream`` is ``logger``, ``stdout`` or ``stderr``;
* control lines ``{"control": "handler_started", "handler", "time"}``,
  ``{"control": "handler_finished", "ok", "time"}`` and, when the handler (or the
  handler's constructor) raised, ``{"control": "error", "error_type", "error_message",
  "error_location", "time"}`` (``plugin_runtime.failure``).

Every line, its newline included, is at most :data:`MAX_LINE_BYTES` of UTF-8: the executor
reads a longer line as raw text, and the Docker Engine keeps a line of that size as one
message of its log copy (it splits longer ones). A message that does not fit is written as
several records, cut at character boundaries, each with the message's level and stream and
``"part_of": N`` (the same N on every part, parts in order; records of other messages may
come between the parts of a line printed piece by piece from several threads). Text is
valid Unicode: a lone surrogate (``"\\udcff"``) is written as U+FFFD.

:class:`ProtocolWriter` is the only code that touches the protocol file descriptor.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import Any, BinaryIO

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDACTED = "***"
# The one line limit of the protocol; the executor's ``executor.run.output.MAX_LINE_BYTES``.
MAX_LINE_BYTES = 16 * 1024
# Room kept in every record for a ``part_of`` id, whether the message is split or not.
_PART_OF_PLACEHOLDER = 2**53


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


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (a surrogate pair becomes the
    character it encodes): what UTF-8 can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _json_size(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string of a protocol line."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def fitting_prefix(text: str, budget: int) -> int:
    """How many characters at the start of ``text`` take at most ``budget`` JSON bytes."""
    size = min(len(text), budget)  # a character takes at least one byte
    while (encoded := _json_size(text[:size])) > budget:
        size = max(1, min(size - 1, size * budget // encoded))
    return size


def split_text(text: str, budget: int) -> list[str]:
    """``text`` cut at character boundaries into pieces of at most ``budget`` JSON bytes."""
    pieces: list[str] = []
    while True:
        size = fitting_prefix(text, budget)
        pieces.append(text[:size])
        text = text[size:]
        if not text:
            return pieces


class ProtocolWriter:
    """Thread-safe writer of protocol lines to a binary stream (the real fd 1).

    The lines of one call are encoded once and written with a single ``write`` + ``flush``
    under one lock, so lines from different threads never interleave and the parts of one
    message are consecutive. Registered secrets are replaced by ``***`` in every log message.
    Write errors (the reader went away) are swallowed: the process cannot report them
    anywhere else.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._broken = False
        self._message_ids = itertools.count(1)

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

    def secret_start(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a secret: a caller that
        cuts a line there keeps them for the next piece, so no secret is cut in two."""
        longest = 0
        for secret in self._secrets:
            for size in range(min(len(secret) - 1, len(text)), longest, -1):
                if secret.startswith(text[-size:]):
                    longest = size
                    break
        return longest

    def new_message_id(self) -> int:
        """An id for the ``part_of`` field of a message written in several calls."""
        return next(self._message_ids)

    def fit(self, level: str, stream: str, text: str) -> int:
        """How many characters at the start of ``text`` (valid Unicode) one record line of
        this level and stream holds."""
        return fitting_prefix(text, self._budget(level, stream))

    def record(
        self,
        level: str,
        msg: str,
        stream: str,
        created: float | None = None,
        part_of: int | None = None,
    ) -> None:
        """Write one log message; ``msg`` may span several lines and stays one message, cut
        into parts (with ``part_of``) only past :data:`MAX_LINE_BYTES`. ``part_of`` marks
        this call's text as a part of a message written in several calls."""
        time_ = utc_timestamp(created)
        pieces = split_text(self.redact(valid_text(msg)), self._budget(level, stream))
        if part_of is None and len(pieces) > 1:
            part_of = self.new_message_id()
        self._write(b"".join(self._record_line(level, p, stream, time_, part_of) for p in pieces))

    def control(self, name: str, **fields: Any) -> None:
        """Write one control line ``{"control": name, **fields, "time": ...}``."""
        self._write(self._line({"control": name, **fields, "time": utc_timestamp()}))

    def _budget(self, level: str, stream: str) -> int:
        """JSON bytes left for the message in one record line."""
        empty = self._record_line(level, "", stream, utc_timestamp(0), _PART_OF_PLACEHOLDER)
        return MAX_LINE_BYTES - len(empty)

    def _record_line(
        self, level: str, msg: str, stream: str, time_: str, part_of: int | None
    ) -> bytes:
        fields = {"level": level, "time": time_, "msg": msg, "stream": stream}
        return self._line(fields if part_of is None else {**fields, "part_of": part_of})

    @staticmethod
    def _line(obj: dict[str, Any]) -> bytes:
        return (valid_text(json.dumps(obj, ensure_ascii=False)) + "\n").encode("utf-8")

    def _write(self, data: bytes) -> None:
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
