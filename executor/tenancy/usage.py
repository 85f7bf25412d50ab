"""When each tenant key was last used, kept off the request path.

A request only notes the use in memory (a dictionary lookup); a background thread writes
the noted uses to the store, at most once per ``interval_s`` per key, all of them in one
transaction. "Last used" is so exact to ``interval_s``, and a use noted in the last
moments before a crash may be lost: it is a hint for people, not an audit record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import utcnow

__all__ = ["KEY_USE_INTERVAL_S", "KeyUsage"]

log = logging.getLogger(__name__)

KEY_USE_INTERVAL_S = 60.0


class KeyUsage:
    """Notes key uses (``used``) and writes them in the background (``start``/``stop``)."""

    def __init__(
        self,
        db: Database,
        interval_s: float = KEY_USE_INTERVAL_S,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._interval_s = interval_s
        self._now = now
        self._noted: dict[str, float] = {}  # key id -> when (clock) its use was last queued
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def used(self, key_id: str, at: float) -> None:
        """Note a use of the key at ``at`` (seconds on the caller's monotonic clock; ``now``
        gives the wall time written); cheap enough for every request: a lookup, a
        comparison."""
        last = self._noted.get(key_id)
        if last is not None and at - last < self._interval_s:
            return
        with self._lock:
            self._noted[key_id] = at
            self._pending[key_id] = self._now()
        self._wake.set()

    def flush(self) -> None:
        """Write the uses noted so far (one transaction)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            with self._db.session() as session:
                tenant_store.mark_keys_used(session, pending)
        except Exception:  # a hint only: the keys' next use writes it again
            log.exception("could not record when %d keys were last used", len(pending))
            with self._lock:
                for key_id in pending:
                    self._noted.pop(key_id, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="key-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
