"""Pure helpers of log viewing: cursors, level sets, --since, SSE parsing, the notifier."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import httpx
import pytest

from executor.cli.client import ServerEvent, parse_events
from executor.cli.follow import parse_since
from executor.errors import InvalidCursor
from executor.notify import Notifier
from executor.store import logs as log_store


def test_cursor_round_trip_and_refusals() -> None:
    cursor = log_store.encode_cursor(1234, "asc")
    assert "1234" not in cursor  # opaque to callers
    assert log_store.decode_cursor(cursor, "asc") == 1234
    with pytest.raises(InvalidCursor, match="issued for order=asc, not order=desc"):
        log_store.decode_cursor(cursor, "desc")
    for bad in ("", "!!!", "bHIxOmFzYzp4", log_store.encode_cursor(1, "asc")[:-2] + "zz"):
        with pytest.raises(InvalidCursor, match="not a cursor this server issued"):
            log_store.decode_cursor(bad, "asc")


def test_minimum_level_always_keeps_system_lines() -> None:
    assert log_store.levels_at_least("WARNING") == ["WARNING", "ERROR", "CRITICAL", "SYSTEM"]
    assert log_store.levels_at_least("CRITICAL") == ["CRITICAL", "SYSTEM"]


def test_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_since("90m", lambda: now) == "2026-11-27T10:30:00+00:00"
    assert parse_since("2d", lambda: now) == "2026-11-25T12:00:00+00:00"
    assert parse_since("2026-11-01T08:00:00") == "2026-11-01T08:00:00+00:00"
    assert parse_since("2026-11-01T08:00:00+01:00") == "2026-11-01T08:00:00+01:00"
    with pytest.raises(ValueError, match="give a duration such as 30s"):
        parse_since("yesterday")


@pytest.mark.parametrize("value", ["9" * 5000 + "d", "\u0661\u0662m", "999999d", "2d\nx"])
def test_since_refuses_durations_not_whole_ascii_or_too_long(value: str) -> None:
    with pytest.raises(ValueError, match="give a duration such as 30s"):
        parse_since(value)


def test_parse_events_reads_ids_types_comments_multiline_data_and_json() -> None:
    body = (
        ": following\n\n"
        'id: 7\ndata: {"a": 1}\n\n'
        'retry: 100\nid: 8\ndata: {"b":\ndata: [1, 2]}\n\n'  # data split over two lines
        "event: end\r\ndata: {}\r\n\r\n"
    )
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode()
    )
    assert list(parse_events(response)) == [
        ServerEvent("message", "7", {"a": 1}),
        ServerEvent("message", "8", {"b": [1, 2]}),
        ServerEvent("end", "8", {}),  # the last event id carries over, as the spec says
    ]


def test_notifier_wakes_a_waiter_from_another_thread_and_never_loses_a_wake() -> None:
    notifier = Notifier()

    async def scenario() -> tuple[bool, bool, bool]:
        seen = notifier.generation
        threading.Timer(0.05, notifier.notify).start()
        woken = await notifier.wait(seen, 5.0)
        # A write between reading the generation and waiting returns at once.
        stale = notifier.generation
        notifier.notify()
        immediate = await notifier.wait(stale, 5.0)
        timed_out = await notifier.wait(notifier.generation, 0.05)
        return woken, immediate, timed_out

    assert asyncio.run(scenario()) == (True, True, False)
