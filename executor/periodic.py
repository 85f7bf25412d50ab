"""One background thread that runs a step now, every interval, and whenever it is woken.

The pre-puller, the warm pool, retention and the dispatcher each keep something matched to
the store this way; they share the thread's start, wake-up, stop and error handling here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from executor.errors import ExecutorError

__all__ = ["Periodic"]


class Periodic:
    """Runs ``step`` in a daemon thread named ``name``: at ``start``, then ``interval_s``
    after each run ends, or as soon as ``wake`` is called. A step that raises is logged on
    ``log`` (an :class:`ExecutorError` by its message, anything else with its traceback) and
    run again at the next interval: one bad pass does not end the thread."""

    def __init__(
        self, name: str, step: Callable[[], object], interval_s: float, log: logging.Logger
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.log = log
        # Set by ``wake``, cleared just before each step: a wake during a step runs it again.
        self.woken = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """``stop`` was called: a long step checks it between its batches."""
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def wake(self, *_: object) -> None:
        """Run the step now rather than at the next interval (any arguments are ignored,
        so it serves as a callback)."""
        self.woken.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """End the thread after the step it is in (waiting up to ``timeout_s``, or for as
        long as that step takes)."""
        self._stopping.set()
        self.woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.woken.clear()
            try:
                self.step()
            except ExecutorError as exc:
                self.log.warning("%s: %s", self.name, exc.message)
            except Exception:
                self.log.exception("%s failed; retrying at the next interval", self.name)
            self.woken.wait(self.interval_s)
