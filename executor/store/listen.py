"""Followers woken by log writers of every process: PostgreSQL ``LISTEN``.

A run on a worker process stores its records in the shared PostgreSQL; this process's log
followers (SSE streams, ``logs --follow``) wait on an in-process ``Notifier`` that only this
process's writers bump. Each log-writing transaction sends ``NOTIFY`` on ``LOG_CHANNEL``
(``executor.store.logs.add_records``), delivered when it commits; one thread per API process
listens on its own connection and bumps the Notifier. While that connection is down the
streams fall back to re-reading the store every ``log_follow_poll_s`` (as on SQLite, where
there is no other process's writer to hear).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from executor.store.logs import LOG_CHANNEL

__all__ = ["LogListener"]

log = logging.getLogger(__name__)

# How long a listener waits for a notification before checking whether it should stop, and
# before connecting again after losing its connection.
WAIT_S = 1.0
RECONNECT_S = 5.0


def _conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` ...)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class LogListener:
    """A thread that calls ``on_notify`` each time another process committed log records."""

    def __init__(self, database_url: str, on_notify: Callable[[], None]) -> None:
        self._conninfo = _conninfo(database_url)
        self._on_notify = on_notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (for tests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-listener", daemon=True)
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
                    "log listener: PostgreSQL connection lost (%s); log followers re-read "
                    "the store every log_follow_poll_s until it is back (retry in %.0f s)",
                    str(exc).strip() or type(exc).__name__,
                    RECONNECT_S,
                )
            finally:
                self.listening.clear()
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {LOG_CHANNEL}")
            self.listening.set()
            # Records may have been committed while no connection listened.
            self._on_notify()
            while not self._stop.is_set():
                for _ in connection.notifies(timeout=WAIT_S, stop_after=1):
                    self._on_notify()
