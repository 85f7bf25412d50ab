"""Posts queued events to the executor (``POST /v1/events``) from a background thread.

An event is written in the same transaction as its label (an outbox), so a label is never
lost when the executor is down: failed posts are retried with exponential backoff; a 4xx
answer (the executor refused the event) marks the event ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from examples.labeling_platform.db import Database
from examples.labeling_platform.settings import PlatformSettings
from examples.labeling_platform.tables import OutgoingEvent

__all__ = ["Deliverer"]

POLL_S = 1.0
FIRST_RETRY_S = 0.5
BATCH = 50
# Answers that retrying cannot change (a malformed event); anything else is retried, so a
# wrong executor key (401) heals once the operator fixes it.
REFUSED = frozenset({400, 404, 413, 422})
log = logging.getLogger("labeling_platform.delivery")


class Deliverer:
    """``start()``/``stop()`` the thread; ``wake()`` after queuing an event."""

    def __init__(self, settings: PlatformSettings, db: Database) -> None:
        self._settings = settings
        self._db = db
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._settings.executor_url is None:
            log.warning("PLATFORM_EXECUTOR_URL is unset: events stay pending")
            return
        self._thread = threading.Thread(target=self._run, name="event-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(30)

    def wake(self) -> None:
        self._wakeup.set()

    def _run(self) -> None:
        key = self._settings.executor_api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        with httpx.Client(
            base_url=str(self._settings.executor_url),
            headers=headers,
            timeout=self._settings.delivery_timeout_s,
        ) as client:
            while not self._stopping.is_set():
                self._wakeup.clear()
                self.deliver_due(client)
                self._wakeup.wait(POLL_S)

    def deliver_due(self, client: httpx.Client) -> None:
        """Post every pending event whose retry time has come."""
        now = datetime.now(UTC)
        with self._db.session() as session:
            due = session.scalars(
                select(OutgoingEvent.id)
                .where(OutgoingEvent.status == "pending", OutgoingEvent.next_attempt_at <= now)
                .order_by(OutgoingEvent.created_at)
                .limit(BATCH)
            ).all()
        for event_id in due:
            if self._stopping.is_set():
                return
            self._deliver(client, event_id)

    def _deliver(self, client: httpx.Client, event_id: str) -> None:
        with self._db.session() as session:
            event = session.get(OutgoingEvent, event_id)
            if event is None or event.status != "pending":
                return
            body = event.body
        try:
            response = client.post("/v1/events", json=body)
            error = None
            if not response.is_success:
                error = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            response, error = None, f"{type(exc).__name__}: {exc}"
        with self._db.session() as session:
            event = session.get(OutgoingEvent, event_id)
            assert event is not None
            event.attempts += 1
            if response is not None and response.is_success:
                event.status, event.last_error = "delivered", None
                event.invocations = list(response.json().get("invocations", []))
            elif response is not None and response.status_code in REFUSED:
                event.status, event.last_error = "failed", error
            else:
                delay = min(
                    FIRST_RETRY_S * 2 ** (event.attempts - 1), self._settings.delivery_retry_max_s
                )
                event.last_error = error
                event.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        if error:
            log.warning("event %s not delivered: %s", event_id, error)
