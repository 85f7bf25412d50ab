"""Turns a plugin container's output into log lines.

The in-container runtime writes one JSON object per stdout line, each line at most
``MAX_LINE_BYTES`` (the limit of its protocol, ``plugin_runtime.protocol``): a log record
(``level``, ``msg``, ``stream``, and ``part_of`` on each part of a message cut into several
records) or a control line (``control``). Anything else a process writes straight to fd 1
or 2 is kept as raw text; a raw line longer than ``MAX_LINE_BYTES`` is cut at UTF-8
character boundaries into the parts of one message. Stored text is valid Unicode (invalid
bytes and lone surrogates become U+FFFD) and carries no run token. Output past the
per-invocation cap is counted and dropped, whole lines at a time, so no protocol line is
stored cut.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from executor.store.run_errors import RunError
from executor.tokens import TOKEN_ALPHABET, TOKEN_BODY_CHARS, TOKEN_PATTERN, TOKEN_PREFIX

__all__ = ["MAX_LINE_BYTES", "STDERR", "STDOUT", "OutputCollector", "OutputLine"]

STDOUT, STDERR = 1, 2
# A line, newline included, is at most this: plugin_runtime.protocol.MAX_LINE_BYTES (a unit
# test keeps the two equal). A longer line is not the runtime's: raw text, cut in parts.
MAX_LINE_BYTES = 16 * 1024
LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
STREAMS = frozenset({"logger", "stdout", "stderr"})
# Level and stream of raw text per file descriptor.
RAW = {STDOUT: ("INFO", "stdout"), STDERR: ("ERROR", "stderr")}
REDACTED = "***"


def _token_start() -> re.Pattern[bytes]:
    """Matches the end of a text where a run token may begin (and go on past the end)."""
    prefix = TOKEN_PREFIX.encode()
    begun = re.escape(prefix) + f"{TOKEN_ALPHABET}{{0,{TOKEN_BODY_CHARS - 1}}}".encode()
    partial = [re.escape(prefix[:size]) for size in range(1, len(prefix))]
    return re.compile(b"(?:" + b"|".join([begun, *partial]) + rb")\Z")


TOKEN_START = _token_start()
TOKEN_CHARS = len(TOKEN_PREFIX) + TOKEN_BODY_CHARS


@dataclass(frozen=True)
class OutputLine:
    """One record to store. Records with the same ``part_of`` (a key unique within one
    collector) are the parts of one message, in order."""

    log_type: str
    content: str
    stream: str
    part_of: str | None = None


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate (a JSON ``\\udcff`` escape gives one) replaced by
    U+FFFD: the store's encodings refuse them. Same as ``plugin_runtime.protocol``'s."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def redact(text: str) -> str:
    """``text`` with every run token replaced by ``***``."""
    return TOKEN_PATTERN.sub(REDACTED, text)


def _utf8_width(lead: int) -> int:
    """Bytes of the UTF-8 sequence a byte starts (1 for ASCII and for invalid bytes)."""
    for width, marker in ((2, 0b110), (3, 0b1110), (4, 0b11110)):
        if lead >> (8 - width - 1) == marker:
            return width
    return 1


def part_end(data: bytes | bytearray, start: int, end: int) -> int:
    """Where to cut ``data[start:end]`` off a longer line: before a run token that may go
    on past ``end``, and never inside a UTF-8 character."""
    tail = max(start, end - TOKEN_CHARS)
    begun = TOKEN_START.search(bytes(data[tail:end]))
    if begun is not None and tail + begun.start() > start:
        return tail + begun.start()
    for lead in range(end - 1, max(start, end - 4) - 1, -1):
        if data[lead] & 0xC0 != 0x80:  # the first byte of a character
            return lead if lead + _utf8_width(data[lead]) > end else end
    return end  # no character start in the last bytes: invalid bytes, cut anywhere


def cut_lines(buffer: bytearray) -> list[tuple[bytes, bool]]:
    """Take the complete lines (without their newline; True) and the over-long parts
    (False) off the front of a stream's ``buffer``."""
    start = 0
    found: list[tuple[bytes, bool]] = []
    while True:
        end = buffer.find(b"\n", start, start + MAX_LINE_BYTES)
        if end >= 0:
            found.append((bytes(buffer[start:end]), True))
            start = end + 1
        elif len(buffer) - start >= MAX_LINE_BYTES:
            end = part_end(buffer, start, start + MAX_LINE_BYTES)
            found.append((bytes(buffer[start:end]), False))
            start = end
        else:
            break
    del buffer[:start]
    return found


def reported_error(obj: dict[str, object]) -> RunError | None:
    """The runtime's report of what the handler raised (an ``error`` control line),
    bounded and without run tokens; None when it names no exception type."""
    kind, message = obj.get("error_type"), obj.get("error_message")
    location = obj.get("error_location")
    if not isinstance(kind, str):
        return None
    return RunError.bounded(
        redact(kind),
        redact(message) if isinstance(message, str) else "",
        redact(location) if isinstance(location, str) else None,
    )


@dataclass
class OutputCollector:
    """Feed it the container's frames; it returns complete lines as records.

    ``resume_at`` (stream id → bytes) is how much of each stream is already stored, when
    an adopted container's output is replayed from its start: those bytes are skipped.
    """

    cap_bytes: int
    resume_at: Mapping[int, int] = field(default_factory=dict)
    total_bytes: int = 0
    kept_bytes: int = 0
    dropped_bytes: int = 0
    handler_started_at: datetime | None = None
    # Set when the runtime reports that the handler returned: the run's token must go now.
    handler_finished_at: datetime | None = None
    # The runtime's report of the exception the handler (or its constructor) raised.
    reported_error: RunError | None = None
    # Sees every other control line; the lines it returns take the control line's place
    # (``plugin-executor run`` shows the calls its record mode reports, in order).
    on_control: Callable[[dict[str, object]], list[OutputLine]] | None = None
    _buffers: dict[int, bytearray] = field(
        default_factory=lambda: {STDOUT: bytearray(), STDERR: bytearray()}
    )
    # Per stream: bytes fed so far (those of resume_at included), bytes left to skip.
    _fed: dict[int, int] = field(default_factory=dict)
    _skip: dict[int, int] = field(default_factory=dict)
    # Per stream: the part_of key of the raw line being cut into parts.
    _raw_parts: dict[int, str] = field(default_factory=dict)
    _part_ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._fed = {fd: self.resume_at.get(fd, 0) for fd in (STDOUT, STDERR)}
        self._skip = dict(self._fed)
        # What the earlier process read counts against the cap as if kept.
        self.total_bytes = self.kept_bytes = sum(self._fed.values())

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    @property
    def read_bytes(self) -> dict[int, int]:
        """Per stream, the bytes turned into lines so far: where a replay resumes."""
        return {fd: self._fed[fd] - len(buffer) for fd, buffer in self._buffers.items()}

    def feed(self, stream_id: int, data: bytes) -> list[OutputLine]:
        """Take one frame of output; return the lines it completed."""
        fd = STDOUT if stream_id == STDOUT else STDERR
        skipped = min(self._skip[fd], len(data))
        self._skip[fd] -= skipped
        data = data[skipped:]
        self.total_bytes += len(data)
        self._fed[fd] += len(data)
        if self.truncated:
            self.dropped_bytes += len(data)
            return []
        self._buffers[fd].extend(data)
        lines: list[OutputLine] = []
        for raw, complete in cut_lines(self._buffers[fd]):
            lines.extend(self._take(fd, raw, last=complete, newline=complete))
        return lines

    def close(self) -> list[OutputLine]:
        """Flush partial lines left when the streams ended."""
        lines: list[OutputLine] = []
        for fd, buffer in self._buffers.items():
            if buffer:
                lines.extend(self._take(fd, bytes(buffer), last=True, newline=False))
                buffer.clear()
        return lines

    def _take(self, fd: int, raw: bytes, *, last: bool, newline: bool) -> list[OutputLine]:
        """Count a line (or a part: not ``last``) against the cap; its records if kept."""
        size = len(raw) + newline
        if self.truncated or self.kept_bytes + size > self.cap_bytes:
            self.dropped_bytes += size
            return []
        self.kept_bytes += size
        if not last or fd in self._raw_parts:
            return self._raw_part(fd, raw, last)
        return self._parse(fd, raw)

    def _raw_part(self, fd: int, raw: bytes, last: bool) -> list[OutputLine]:
        if last:
            key = self._raw_parts.pop(fd, None)
        else:
            key = self._raw_parts.setdefault(fd, f"raw{fd}.{next(self._part_ids)}")
        text = raw.decode("utf-8", errors="replace")
        if last:
            text = text.rstrip("\r")
            if not text:
                return []  # the line ended right after its last part
        level, stream = RAW[fd]
        return [OutputLine(level, redact(text), stream, key)]

    def _parse(self, fd: int, raw: bytes) -> list[OutputLine]:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if fd == STDOUT and text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                return self._from_protocol(obj, text)
        if not text:
            return []
        level, stream = RAW[fd]
        return [OutputLine(level, redact(text), stream)]

    def _from_protocol(self, obj: dict[str, object], text: str) -> list[OutputLine]:
        if obj.get("control") == "handler_started":
            self.handler_started_at = datetime.now(UTC)
            return []
        if obj.get("control") == "handler_finished":
            self.handler_finished_at = datetime.now(UTC)
            return []
        if obj.get("control") == "error":
            reported = reported_error(obj)
            # One after the handler finished is not the handler's: ignored.
            if reported is not None and self.handler_finished_at is None:
                self.reported_error = reported
            return []
        if "control" in obj:
            return [] if self.on_control is None else self.on_control(obj)
        message = obj.get("msg")
        if not isinstance(message, str):
            return [OutputLine("INFO", redact(text), "stdout")]
        level = obj.get("level")
        stream = obj.get("stream")
        part_of = obj.get("part_of")
        return [
            OutputLine(
                level if isinstance(level, str) and level in LEVELS else "INFO",
                redact(valid_text(message)),
                stream if isinstance(stream, str) and stream in STREAMS else "stdout",
                f"p{part_of}" if type(part_of) is int else None,
            )
        ]
