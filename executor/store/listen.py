"""Followers woken by log writers of every process, dispatchers by events queued in any
process: PostgreSQL ``LISTEN``.

A run on a worker process stores its records in the shared PostgreSQL; this process's log
followers (SSE streams, ``logs --follow``) wait on an in-process ``Notifier`` that only this
process's writers bump. Each log-writing transaction sends ``NOTIFY`` on ``LOG_CHANNEL``
(``executor.store.logs.add_records``), delivered when it commits; one thread per API process
listens on its own connection and bumps the Notifier. While that connection is down the
streams fall back to re-reading the store every ``log_follow_poll_s`` (as on SQLite, where
there is no other process's writer to hear).

The same listener on ``QUEUE_CHANNEL`` wakes a dispatcher when another process (the API
that took the event) queued invocations: a worker claims a run when it is queued, not at
its next ``dispatch_poll_s`` poll, which stays the fallback while the connection is down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from executor.store.ingest import QUEUE_CHANNEL
from executor.store.logs import LOG_CHANNEL

__all__ = ["QUEUE_CHANNEL", "LogListener"]

log = logging.getLogger(__name__)

# How long a listener waits for a notification before checking whether it should stop, and
# before connecting again after losing its connection.
WAIT_S = 1.0
RECONNECT_S = 5.0
_FALLBACK = {
    LOG_CHANNEL: "log followers re-read the store every log_follow_poll_s",
    QUEUE_CHANNEL: "the dispatcher claims every dispatch_poll_s",
}


def _conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` ...)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class LogListener:
    """A thread that calls ``on_notify`` each time another process committed log records
    (or, with ``channel=QUEUE_CHANNEL``, queued invocations)."""

    def __init__(
        self, database_url: str, on_notify: Callable[[], None], channel: str = LOG_CHANNEL
    ) -> None:
        self._conninfo = _conninfo(database_url)
        self._on_notify = on_notify
        self._channel = channel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (for tests)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"listener-{self._channel}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                # The message names the host and the user, never the password.
                log.warning(
                    "listener on %s: PostgreSQL connection lost (%s); %s until it is back "
                    "(retry in %.0f s)",
                    self._channel,
                    str(exc).strip() or type(exc).__name__,
                    _FALLBACK.get(self._channel, "readers poll"),
                    RECONNECT_S,
                )
            finally:
                self.listening.clear()
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {self._channel}")
            self.listening.set()
            # Records (or runs) may have been committed while no connection listened.
            self._on_notify()
            while not self._stop.is_set():
                for _ in connection.notifies(timeout=WAIT_S, stop_after=1):
                    self._on_notify()
