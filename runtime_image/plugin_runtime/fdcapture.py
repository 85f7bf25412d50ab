"""Capture of an OS-level file descriptor (fd 1) into protocol records.

Output that bypasses ``sys.stdout`` (child processes, C extensions, ``os.write(1, ...)``)
would otherwise corrupt the protocol stream; it is read from a pipe by a daemon thread and
written as ``stdout`` records instead.
"""

from __future__ import annotations

import codecs
import os
import threading

from plugin_runtime.streams import LineSink

READ_SIZE = 64 * 1024


class FdCapture:
    """Points ``fd`` at a pipe whose lines are fed to ``sink``.

    :meth:`start` once; :meth:`stop` points ``fd`` at ``/dev/null``, waits (bounded) for the
    reader to see end-of-file — which only happens once child processes that inherited the
    pipe have closed it too — and is safe to call twice.
    """

    def __init__(self, fd: int, sink: LineSink) -> None:
        self._fd = fd
        self._sink = sink
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> None:
        """Redirect ``fd`` into a pipe and start the reader thread."""
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, self._fd)
        os.close(write_fd)
        self._thread = threading.Thread(
            target=self._pump, args=(read_fd,), name="plugin-runtime-fd-capture", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capturing: later writes to ``fd`` are discarded."""
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._fd)
        os.close(devnull)
        self._thread.join(timeout)

    def _pump(self, read_fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while chunk := os.read(read_fd, READ_SIZE):
                self._sink.feed(decoder.decode(chunk))
            self._sink.feed(decoder.decode(b"", final=True))
        finally:
            os.close(read_fd)
            self._sink.flush_partial()
