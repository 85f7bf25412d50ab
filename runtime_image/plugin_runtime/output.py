"""Installs the output protocol for the whole process and tears it down at the end."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from plugin_runtime.fdcapture import FdCapture
from plugin_runtime.logs import install_logging
from plugin_runtime.protocol import ProtocolWriter
from plugin_runtime.stderr_levels import StderrLevels
from plugin_runtime.streams import LineSink, RecordStream

TYPE_CHECKING = False  # typing is not imported at run time: see loader's docstring
if TYPE_CHECKING:
    from typing import BinaryIO, NoReturn

STDOUT_FD = 1
STDERR_FD = 2
# How long an ``os._exit`` of the plugin waits for its output to be written (longer than
# FdCapture.stop waits for its reader). The flush runs in a thread of its own: the exit may
# come from a signal handler that interrupted a write holding a lock the flush needs.
EXIT_FLUSH_S = 5.0


class Output:
    """The process-wide output setup.

    :meth:`install` keeps a private duplicate of fd 1 for the protocol, points fd 1 itself
    at a capture pipe, replaces ``sys.stdout`` (records at INFO, stream ``stdout``) and
    ``sys.stderr`` (stream ``stderr``, INFO unless a line reads as a problem:
    ``plugin_runtime.stderr_levels``) and routes logging. fd 2 is left
    alone: raw writes to it reach the container's stderr as they are.

    Until :meth:`close`, ``os._exit`` in this process first writes what the plugin wrote
    so far (partial lines, what is still in the capture pipe): a handler that ends its
    process that way keeps its output.
    """

    def __init__(self, writer: ProtocolWriter, capture: FdCapture, sinks: list[LineSink]) -> None:
        self.writer = writer
        self._capture = capture
        self._sinks = sinks
        self._real_exit = os._exit
        self._pid = os.getpid()

    @classmethod
    def install(cls) -> Output:
        """Set everything up; call once, first thing in the process."""
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        protocol_fd = os.dup(STDOUT_FD)  # not inherited by child processes
        raw: BinaryIO = open(protocol_fd, "wb", buffering=64 * 1024)  # noqa: SIM115
        writer = ProtocolWriter(raw)
        capture = FdCapture(STDOUT_FD, LineSink(writer, "stdout", "INFO"))
        capture.start()
        out_sink = LineSink(writer, "stdout", "INFO")
        err_sink = LineSink(writer, "stderr", "INFO", level_rule=StderrLevels, redraws=True)
        sys.stdout = RecordStream(out_sink, STDOUT_FD, "<stdout>")
        sys.stderr = RecordStream(err_sink, STDERR_FD, "<stderr>")
        install_logging(writer)
        out = cls(writer, capture, [out_sink, err_sink])
        os._exit = out._exit_after_flush
        return out

    def log(self, level: str, msg: str) -> None:
        """Write one runtime record (stream ``logger``) directly, bypassing logging."""
        self.writer.record(level, msg, "logger")

    def flush_partial(self) -> None:
        """Write the pending partial lines of ``sys.stdout`` / ``sys.stderr``."""
        for sink in self._sinks:
            sink.flush_partial()

    def drain(self) -> None:
        """Flush everything the plugin wrote so far and stop capturing fd 1.

        Call when the handler returned, before the ``handler_finished`` line. Idempotent.
        """
        original = sys.__stdout__
        if original is not None:
            with contextlib.suppress(OSError, ValueError):
                original.flush()
        self.flush_partial()
        self._capture.stop()

    def close(self) -> None:
        """Drain, flush the protocol and stop writing it: the last call before the process
        exits."""
        self.drain()
        self.writer.close()
        os._exit = self._real_exit

    def _exit_after_flush(self, status: int) -> NoReturn:
        """``os._exit`` while the output is installed (a forked child's exits at once:
        it must not write its copy of the parent's pending lines)."""
        if os.getpid() == self._pid:
            thread = threading.Thread(
                target=self.close, name="plugin-runtime-exit-flush", daemon=True
            )
            thread.start()
            thread.join(EXIT_FLUSH_S)
        self._real_exit(status)
