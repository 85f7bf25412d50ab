"""Server-Sent Events: live log records and live build logs.

A stream never holds a database connection while it waits: each read is one short session
in a worker thread, then the stream sleeps on the ``Notifier`` (woken by this process's
writers) with a bounded poll fallback (for writes by other processes).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from executor.api.presenters import log_public
from executor.notify import Notifier
from executor.service import reads
from executor.statuses import BuildStatus
from executor.store import logs as log_store
from executor.store.db import Database

__all__ = ["SSE_HEADERS", "StreamTiming", "build_log_events", "log_events", "sse"]

# Proxies (nginx) buffer responses unless told not to; SSE must reach the reader at once.
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
FOLLOW_BATCH = 500


@dataclass(frozen=True)
class StreamTiming:
    """How often an idle stream looks at the store and sends a keep-alive comment."""

    poll_s: float
    heartbeat_s: float


def sse(data: object, *, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE message; ``data`` is sent as JSON on a single line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


async def log_events(
    db: Database,
    notifier: Notifier,
    where: log_store.LogFilter,
    after_id: int,
    timing: StreamTiming,
) -> AsyncIterator[bytes]:
    """Each matching record after ``after_id`` as it is stored (SSE ``id`` = record id).

    Following one run (``where.run_id``) ends with an ``end`` event once the run has ended
    and every record was sent; otherwise the stream runs until the client goes away.
    """
    last_sent = time.monotonic()
    yield b": following\n\n"
    while True:
        seen = notifier.generation
        records, ended = await anyio.to_thread.run_sync(
            reads.logs_after, db, where, after_id, FOLLOW_BATCH
        )
        for record in records:
            after_id = record.id
            yield sse(log_public(record).model_dump(mode="json"), event_id=record.id)
        if records:
            last_sent = time.monotonic()
            continue
        if ended:
            yield sse({"run_id": where.run_id}, event="end")
            return
        if time.monotonic() - last_sent >= timing.heartbeat_s:
            last_sent = time.monotonic()
            yield b": keep-alive\n\n"
        await notifier.wait(seen, timing.poll_s)


async def build_log_events(
    db: Database, version_id: str, offset: int, timing: StreamTiming
) -> AsyncIterator[bytes]:
    """A version's build log as it grows (``id`` = characters sent), then an ``end`` event.

    The builder saves the whole log text periodically, so the store is polled.
    """
    last_sent = time.monotonic()
    yield b": following\n\n"
    while True:
        text, status, error = await anyio.to_thread.run_sync(reads.build_progress, db, version_id)
        if len(text) < offset:  # the build restarted (executor restart): start over
            offset = 0
            yield sse({}, event="reset", event_id=0)
        if len(text) > offset:
            chunk, offset = text[offset:], len(text)
            last_sent = time.monotonic()
            yield sse({"text": chunk}, event="build", event_id=offset)
        if status != BuildStatus.DEPLOYING:
            yield sse({"status": status, "error": error}, event="end")
            return
        if time.monotonic() - last_sent >= timing.heartbeat_s:
            last_sent = time.monotonic()
            yield b": keep-alive\n\n"
        await anyio.sleep(timing.poll_s)
