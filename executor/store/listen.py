"""What other processes announce through PostgreSQL ``NOTIFY``, heard by one thread.

A run on a worker process stores its records in the shared PostgreSQL; this process's log
followers (SSE streams, ``logs --follow``) wait on an in-process ``Notifier`` that only this
process's writers bump. Each log-writing transaction sends ``NOTIFY`` on ``LOG_CHANNEL``
(``executor.store.logs.add_records``), delivered when it commits; one thread per API process
listens on its own connection and bumps the Notifier. While that connection is down the
streams fall back to re-reading the store every ``log_follow_poll_s`` (as on SQLite, where
there is no other process's writer to hear).

Revoked and deleted API keys are announced the same way (``KEY_CHANNEL``, the key id as the
payload), so every API process drops them from its key cache at once; while the connection
is down the cache is not used (``StoreListener.listening``).

Queued invocations too (``QUEUE_CHANNEL``, from the transaction that queues them): a
dispatcher in another process (a worker) claims a run when it is queued, not at its next
``dispatch_poll_s`` poll, which stays the fallback while the connection is down. And pushed
versions (``VERSION_CHANNEL``, ``executor.store.distribution``): a worker's pre-puller
pulls the image at once, so the build waiting for the nodes ends within a pull.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import psycopg
from sqlalchemy.engine import make_url

from executor.store.distribution import VERSION_CHANNEL
from executor.store.ingest import QUEUE_CHANNEL
from executor.store.logs import LOG_CHANNEL
from executor.store.tenants import KEY_CHANNEL

__all__ = ["QUEUE_CHANNEL", "VERSION_CHANNEL", "Handler", "StoreListener"]

# Called with a notification's payload, or with None once (re)connected: anything may have
# been announced while nobody listened.
Handler = Callable[[str | None], None]

log = logging.getLogger(__name__)

# How long a listener waits for a notification before checking whether it should stop, and
# before connecting again after losing its connection.
WAIT_S = 1.0
RECONNECT_S = 5.0
# What each channel's listeners do instead while the connection is down.
_FALLBACK = {
    LOG_CHANNEL: "log followers re-read the store every log_follow_poll_s",
    KEY_CHANNEL: "API keys are checked in the store on every request",
    QUEUE_CHANNEL: "the dispatcher claims every dispatch_poll_s",
    VERSION_CHANNEL: "pushed images are pre-pulled every 5 s",
}


def _conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` ...)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class StoreListener:
    """A thread that calls the handler of a channel for each notification on it."""

    def __init__(self, database_url: str, handlers: Mapping[str, Handler]) -> None:
        self._conninfo = _conninfo(database_url)
        self._handlers = dict(handlers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in effect (for tests)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)
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
                    "store listener: PostgreSQL connection lost (%s); until it is back, %s "
                    "(retry in %.0f s)",
                    str(exc).strip() or type(exc).__name__,
                    " and ".join(_FALLBACK.get(c, f"{c} is not heard") for c in self._handlers),
                    RECONNECT_S,
                )
            finally:
                self.listening.clear()
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as connection:
            for channel in self._handlers:
                connection.execute(f"LISTEN {channel}")
            # Anything may have been committed while no connection listened.
            for handler in self._handlers.values():
                handler(None)
            self.listening.set()
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=WAIT_S, stop_after=1):
                    heard = self._handlers.get(notification.channel)
                    if heard is not None:
                        heard(notification.payload)
