"""Capture of an OS-level file descriptor (fd 1) into protocol records.

Output that bypasses ``sys.stdout`` (child processes, C extensions, ``os.write(1, ...)``)
would otherwise corrupt the protocol stream; it is read from a pipe by a daemon thread and
written as ``stdout`` records instead.
"""

from __future__ import annotations

import codecs
import errno
import os
import select
import stat
import threading

from plugin_runtime.streams import LineSink

READ_SIZE = 64 * 1024
# dup2 fails with EBUSY while another thread is opening a file into the target number (a
# handler that closed fd 1 frees it for the next open): tried again this many times.
DUP2_ATTEMPTS = 100


class FdCapture:
    """Points ``fd`` at a pipe whose lines are fed to ``sink``.

    :meth:`start` once; :meth:`stop` points ``fd`` at ``/dev/null`` and waits (bounded) for
    the reader to take what is already in the pipe, and is safe to call twice. It does not
    wait for end-of-file: a process the plugin left running (a daemon that inherited the
    pipe) would hold it open, and the run ends when the handler returns, not when it does.
    If the plugin closed or replaced ``fd`` meanwhile, :meth:`stop` leaves it as it is.
    """

    def __init__(self, fd: int, sink: LineSink) -> None:
        self._fd = fd
        self._sink = sink
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wake_r, self._wake_w = -1, -1
        self._pipe_id: tuple[int, int] | None = None

    def start(self) -> None:
        """Redirect ``fd`` into a pipe and start the reader thread."""
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, self._fd)
        self._pipe_id = _identity(write_fd)
        os.close(write_fd)
        # Written once by stop(): the reader then ends as soon as the pipe is empty.
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._pump, args=(read_fd,), name="plugin-runtime-fd-capture", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop capturing: what is in the pipe becomes records, later writes are discarded."""
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        if self._still_ours():
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                _dup2(devnull, self._fd)
            finally:
                if devnull != self._fd:  # it took the number a plugin closed
                    os.close(devnull)
        os.write(self._wake_w, b"\0")
        self._thread.join(timeout)
        if not self._thread.is_alive():  # a reader still in select() keeps its fds
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _still_ours(self) -> bool:
        """True while ``fd`` is still the capture pipe (not closed or replaced by the plugin)."""
        try:
            return _identity(self._fd) == self._pipe_id
        except OSError:
            return False

    def _pump(self, read_fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while True:
                readable, _, _ = select.select([read_fd, self._wake_r], [], [])
                if read_fd not in readable:
                    break  # stop() was called and nothing is left to read
                chunk = os.read(read_fd, READ_SIZE)
                if not chunk:
                    break
                self._sink.feed(decoder.decode(chunk))
            self._sink.feed(decoder.decode(b"", final=True))
        finally:
            os.close(read_fd)
            self._sink.flush_partial()


def _identity(fd: int) -> tuple[int, int]:
    """The device and inode of what ``fd`` refers to (a pipe's is the same at both ends)."""
    status = os.fstat(fd)
    if not stat.S_ISFIFO(status.st_mode):
        return (-1, -1)
    return (status.st_dev, status.st_ino)


def _dup2(source: int, target: int) -> None:
    """``os.dup2``, tried again while the kernel answers EBUSY (see ``DUP2_ATTEMPTS``)."""
    for _ in range(DUP2_ATTEMPTS - 1):
        try:
            os.dup2(source, target)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    os.dup2(source, target)
