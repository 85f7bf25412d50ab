"""Turns a plugin container's output into log lines.

The in-container runtime writes one JSON object per stdout line: a log record
(``level``, ``msg``, ``stream``) or a control line (``control``). Anything else a process
writes straight to fd 1 or 2 is kept as raw text. Output past the per-invocation cap is
counted and dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["MAX_LINE_BYTES", "OutputCollector", "OutputLine"]

STDOUT, STDERR = 1, 2
# A line longer than this is cut into several records so one line cannot hold memory.
MAX_LINE_BYTES = 64 * 1024
LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
STREAMS = frozenset({"logger", "stdout", "stderr"})
REDACTED = "***"


@dataclass(frozen=True)
class OutputLine:
    log_type: str
    content: str
    stream: str


@dataclass
class OutputCollector:
    """Feed it the container's frames; it returns complete lines as records."""

    cap_bytes: int
    secrets: tuple[str, ...] = ()
    total_bytes: int = 0
    kept_bytes: int = 0
    dropped_bytes: int = 0
    handler_started_at: datetime | None = None
    # Set when the runtime reports that the handler returned: the run's token must go now.
    handler_finished_at: datetime | None = None
    _buffers: dict[int, bytearray] = field(
        default_factory=lambda: {STDOUT: bytearray(), STDERR: bytearray()}
    )

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def feed(self, stream_id: int, data: bytes) -> list[OutputLine]:
        """Take one frame of output; return the lines it completed."""
        self.total_bytes += len(data)
        room = self.cap_bytes - self.kept_bytes
        if len(data) > room:
            self.dropped_bytes += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self.kept_bytes += len(data)
        buffer = self._buffers.get(stream_id, self._buffers[STDERR])
        buffer.extend(data)
        lines: list[OutputLine] = []
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) < MAX_LINE_BYTES:
                    break
                end = MAX_LINE_BYTES
                raw, rest = bytes(buffer[:end]), buffer[end:]
            else:
                raw, rest = bytes(buffer[:end]), buffer[end + 1 :]
            buffer[:] = rest
            lines.extend(self._parse(stream_id, raw))
        return lines

    def close(self) -> list[OutputLine]:
        """Flush partial lines left when the streams ended."""
        lines: list[OutputLine] = []
        for stream_id, buffer in self._buffers.items():
            if buffer:
                lines.extend(self._parse(stream_id, bytes(buffer)))
                buffer.clear()
        return lines

    def _parse(self, stream_id: int, raw: bytes) -> list[OutputLine]:
        text = self._redact(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if stream_id == STDOUT and text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                return self._from_protocol(obj, text)
        if not text:
            return []
        if stream_id == STDOUT:
            return [OutputLine("INFO", text, "stdout")]
        return [OutputLine("ERROR", text, "stderr")]

    def _from_protocol(self, obj: dict[str, object], text: str) -> list[OutputLine]:
        if obj.get("control") == "handler_started":
            self.handler_started_at = datetime.now(UTC)
            return []
        if obj.get("control") == "handler_finished":
            self.handler_finished_at = datetime.now(UTC)
            return []
        if "control" in obj:
            return []
        message = obj.get("msg")
        if not isinstance(message, str):
            return [OutputLine("INFO", text, "stdout")]
        level = obj.get("level")
        stream = obj.get("stream")
        return [
            OutputLine(
                level if isinstance(level, str) and level in LEVELS else "INFO",
                message,
                stream if isinstance(stream, str) and stream in STREAMS else "stdout",
            )
        ]

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        return text
