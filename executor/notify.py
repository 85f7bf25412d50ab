"""Wakes live readers (SSE streams in the event loop) when a writer thread stored records.

Writers call ``notify()`` from any thread; readers note ``generation`` before they read the
store and then ``wait(generation, timeout)``, which returns at once if a write happened in
between, so a wake-up is never lost. The timeout is the poll fallback for writes made by
other processes, which cannot notify us.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Notifier"]


class Notifier:
    """A generation counter with async waiters, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def generation(self) -> int:
        """How many writes were announced so far."""
        return self._generation

    def notify(self) -> None:
        """Records were written: wake every waiting reader."""
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            # The loop may have closed since the waiter registered (server shutting down).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seen: int, timeout_s: float) -> bool:
        """Wait until a write after generation ``seen`` or ``timeout_s``; True if woken."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._generation != seen:
                return True
            self._waiters.add(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(entry)
