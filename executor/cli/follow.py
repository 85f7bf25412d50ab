"""Reading logs from the CLI: ``--since`` parsing, paging, and following a live stream."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from executor.cli.client import ApiClient

__all__ = ["follow_records", "paged_records", "parse_since"]

RECONNECT_PAUSE_S = 1.0
PAGE_SIZE = 1000
# ASCII digits only (\d takes any script's), few enough for a timedelta.
_RELATIVE = re.compile(r"([0-9]{1,5})([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """An ISO timestamp for ``--since``: ``30m``/``2h``/``1d`` ago, or an ISO date/time.

    Raises ValueError with what was expected.
    """
    match = _RELATIVE.fullmatch(value.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now() - delta).isoformat()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"--since {value!r}: give a duration such as 30s, 15m, 2h, 7d, or an ISO time "
            "such as 2026-11-27T10:00:00+00:00"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def paged_records(client: ApiClient, params: dict[str, Any], limit: int) -> Iterator[Any]:
    """Up to ``limit`` records, oldest first, fetched page by page with the cursor."""
    cursor: str | None = None
    sent = 0
    while sent < limit:
        page_params = {**params, "limit": min(PAGE_SIZE, limit - sent)}
        if cursor:
            page_params["cursor"] = cursor
        records, cursor = client.page("/v1/logs", page_params)
        yield from records
        sent += len(records)
        if len(records) < page_params["limit"] or not cursor:
            return


def follow_records(client: ApiClient, params: dict[str, Any]) -> Iterator[Any]:
    """Records as the server streams them; reconnects after a dropped connection, resuming
    after the last record received. Ends when the server ends the stream (a run ended).

    The stream is read on a daemon thread and handed over through a queue: Ctrl-C then
    interrupts only this wait, never a read inside the HTTP client (where it could leave a
    connection-pool lock held and hang the clean-up), so it stops the command at any point.
    """
    handover: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=PAGE_SIZE)
    threading.Thread(
        target=_pump, args=(client, params, handover), name="follow", daemon=True
    ).start()
    while True:
        kind, value = handover.get()
        if kind == "record":
            yield value
        elif kind == "error":
            raise value
        else:
            return


def _pump(client: ApiClient, params: dict[str, Any], handover: queue.Queue[Any]) -> None:
    try:
        for record in _stream(client, params):
            handover.put(("record", record))
    except Exception as exc:  # an API error is the command's to report
        handover.put(("error", exc))
        return
    handover.put(("end", None))


def _stream(client: ApiClient, params: dict[str, Any]) -> Iterator[Any]:
    last_id: str | None = None
    while True:
        try:
            for event in client.events("/v1/logs/stream", params, last_id):
                if event.event == "end":
                    return
                if event.event == "message":
                    last_id = event.id
                    yield event.data
            return
        except httpx.TransportError:
            time.sleep(RECONNECT_PAUSE_S)
