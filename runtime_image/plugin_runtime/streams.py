"""Text streams that turn written characters into protocol log records, one per line.

:class:`RecordStream` replaces ``sys.stdout`` / ``sys.stderr``; :class:`LineSink` holds the
partial-line buffer and is shared with the fd-level capture of fd 1.
"""

from __future__ import annotations

import codecs
import io
import threading
from collections.abc import Callable

from plugin_runtime.protocol import MAX_LINE_BYTES, ProtocolWriter, valid_text

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# A line longer than this (without its newline yet) is written in pieces, so memory stays
# bounded; each piece takes one or more protocol lines.
MAX_LINE_CHARS = MAX_LINE_BYTES

# A line's level from its text; one per thread, so it may remember earlier lines.
LevelRule = Callable[[str], str]


def final_state(text: str) -> str:
    """What a terminal shows of ``text`` after its carriage returns: the part after the
    last one that is not at the very end. A progress bar (tqdm) redraws itself as
    ``\\r`` + the whole bar, so only its last drawing is kept, not every redraw."""
    cut = text.rfind("\r", 0, len(text) - 1)
    return text[cut + 1 :] if cut >= 0 else text


def _as_written(text: str) -> str:
    return text


class LineSink:
    """Buffers characters and writes one record per complete line.

    Each thread has its own partial-line buffer, so ``print()`` calls from concurrent
    threads (which write the text and the newline separately) still give whole lines. A
    trailing ``\\r`` is dropped from each line; with ``redraws`` (stderr, where progress
    bars are drawn) a line redrawn after carriage returns keeps its final state only
    (``final_state``), as it comes. A line longer than
    ``max_chars`` is written in pieces of one protocol line each as it comes, parts of one
    message (``part_of``);
    characters at a cut that could begin a secret wait for the next piece, so redaction
    still sees the secret whole. Lone surrogates become U+FFFD as they come.
    :meth:`flush_partial` writes the pending partial lines (called when the handler is done
    and at exit).
    """

    def __init__(
        self,
        writer: ProtocolWriter,
        stream: str,
        level: str,
        max_chars: int = MAX_LINE_CHARS,
        level_rule: Callable[[], LevelRule] | None = None,
        redraws: bool = False,
    ) -> None:
        self._writer = writer
        self._stream = stream
        self._level = level
        self._max_chars = max_chars
        self._level_rule = level_rule
        self._redraw = final_state if redraws else _as_written
        self._rules: dict[int, LevelRule] = {}  # thread -> its level rule
        self._buffers: dict[int, str] = {}
        # thread -> part_of id and level of its line being written in pieces
        self._parts: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        """Add characters written by the calling thread; complete lines become records."""
        key = threading.get_ident()
        text = valid_text(text)
        with self._lock:
            *lines, buffer = (self._buffers.pop(key, "") + text).split("\n")
            for line in lines:
                self._write(key, self._redraw(line.removesuffix("\r")), done=True)
            buffer = self._redraw(buffer)
            while len(buffer) >= self._max_chars:
                cut = self._writer.fit(self._level, self._stream, buffer[: self._max_chars])
                cut -= self._writer.secret_start(buffer[:cut])
                self._write(key, buffer[:cut], done=False)
                buffer = buffer[cut:]
            if buffer:
                self._buffers[key] = buffer

    def flush_partial(self) -> None:
        """Write every pending partial line, if any, as one record each."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            for key, line in buffers.items():
                self._write(key, line, done=True)
            self._parts.clear()

    def _write(self, key: int, text: str, *, done: bool) -> None:
        # A line written in pieces keeps the level its first piece got.
        part_of, level = self._parts.get(key) or (None, self._level_of(key, text))
        if done:
            self._parts.pop(key, None)
            if part_of is not None and not text:
                return  # the line ended right after its last piece
        elif part_of is None:
            part_of = self._writer.new_message_id()
            self._parts[key] = (part_of, level)
        self._writer.record(level, text, self._stream, part_of=part_of)

    def _level_of(self, key: int, text: str) -> str:
        if self._level_rule is None:
            return self._level
        rule = self._rules.get(key)
        if rule is None:
            rule = self._rules[key] = self._level_rule()
        return rule(text)


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
