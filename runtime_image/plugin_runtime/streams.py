"""Text streams that turn written characters into protocol log records, one per line.

:class:`RecordStream` replaces ``sys.stdout`` / ``sys.stderr``; :class:`LineSink` holds the
partial-line buffer and is shared with the fd-level capture of fd 1.
"""

from __future__ import annotations

import codecs
import io
import threading
from typing import TYPE_CHECKING

from plugin_runtime.protocol import ProtocolWriter

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

MAX_LINE_CHARS = 64 * 1024


class LineSink:
    """Buffers characters and writes one record per complete line.

    Each thread has its own partial-line buffer, so ``print()`` calls from concurrent
    threads (which write the text and the newline separately) still give whole lines. A
    trailing ``\\r`` is dropped from each line. A line longer than ``max_chars`` is split
    into several records so memory stays bounded. :meth:`flush_partial` writes the pending
    partial lines (called when the handler is done and at exit).
    """

    def __init__(
        self, writer: ProtocolWriter, stream: str, level: str, max_chars: int = MAX_LINE_CHARS
    ) -> None:
        self._writer = writer
        self._stream = stream
        self._level = level
        self._max_chars = max_chars
        self._buffers: dict[int, str] = {}
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        """Add characters written by the calling thread; complete lines become records."""
        key = threading.get_ident()
        with self._lock:
            buffer = self._buffers.pop(key, "") + text
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                self._write(line.removesuffix("\r"))
            while len(buffer) >= self._max_chars:
                self._write(buffer[: self._max_chars])
                buffer = buffer[self._max_chars :]
            if buffer:
                self._buffers[key] = buffer

    def flush_partial(self) -> None:
        """Write every pending partial line, if any, as one record each."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            for line in buffers.values():
                self._write(line)

    def _write(self, line: str) -> None:
        self._writer.record(self._level, line, self._stream)


class _BinaryView(io.RawIOBase):
    """``sys.stdout.buffer`` stand-in: decodes UTF-8 bytes (invalid bytes replaced)."""

    def __init__(self, sink: LineSink) -> None:
        super().__init__()
        self._sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        raw = bytes(data)
        with self._lock:
            text = self._decoder.decode(raw)
        self._sink.feed(text)
        return len(raw)

    def close(self) -> None:
        """Keep working: plugin code must not be able to close the runtime's output."""


class RecordStream(io.TextIOBase):
    """A write-only text stream whose lines become protocol records.

    ``fileno()`` returns the given descriptor (fd 1 is the captured pipe, fd 2 the real
    stderr) so ``subprocess.run(stdout=sys.stdout)`` keeps working. ``flush()`` does not
    cut a partial line; ``close()`` only flushes it and leaves the stream usable.
    """

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, sink: LineSink, fd: int, name: str) -> None:
        super().__init__()
        self._sink = sink
        self._fd = fd
        self._name = name
        self._binary = _BinaryView(sink)

    @property
    def name(self) -> str:
        return self._name

    @property
    def buffer(self) -> io.RawIOBase:
        """Binary view of this stream (bytes are decoded as UTF-8)."""
        return self._binary

    @property
    def line_buffering(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str, /) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._sink.feed(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: complete lines are written as soon as they are complete."""

    def close(self) -> None:
        self._sink.flush_partial()
