"""Plugin logs: queried like Kili's ``get_plugin_logs``, paged by cursor, followed over SSE."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse

from executor.api.deps import LogsRead, ServiceDep
from executor.api.presenters import log_public
from executor.api.streams import SSE_HEADERS, StreamTiming, log_events
from executor.bounds import MAX_INT64
from executor.errors import InvalidCursor, InvalidQuery
from executor.identifiers import InvocationId, PluginName, ProjectId
from executor.schemas.invocations import LogRecordPublic
from executor.service import reads
from executor.store import logs as log_store

router = APIRouter(prefix="/v1/logs", tags=["logs"])

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Order = Literal["asc", "desc"]
NEXT_CURSOR_HEADER = "X-Next-Cursor"


def log_filter(
    caller: LogsRead,
    project_id: ProjectId | None = None,
    plugin_name: PluginName | None = None,
    run_id: InvocationId | None = None,
    level: Annotated[
        Level | None, Query(description="Minimum level; SYSTEM lines are always included.")
    ] = None,
    start_date: Annotated[datetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Created strictly before.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text the line contains (any case).")
    ] = None,
) -> log_store.LogFilter:
    """The filters shared by the query and the stream (the caller's tenant's logs only)."""
    if start_date is not None and until is not None and until <= start_date:
        raise InvalidQuery(
            f"until ({until.isoformat()}) must be later than start_date "
            f"({start_date.isoformat()}): swap or widen them"
        )
    return log_store.LogFilter(
        tenant_id=caller.tenant_id,
        project_id=project_id,
        plugin_name=plugin_name,
        run_id=run_id,
        level=level,
        start_date=start_date,
        until=until,
        text=q or None,
    )


FilterDep = Annotated[log_store.LogFilter, Depends(log_filter)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("", response_model=list[LogRecordPublic])
def get_logs(
    service: ServiceDep,
    where: FilterDep,
    response: Response,
    limit: Limit = 100,
    skip: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    order: Order = "asc",
    follow: Annotated[bool, Query(description="Stream as SSE, like /v1/logs/stream")] = False,
) -> Any:
    """Matching records, oldest first (``order=desc``: newest first).

    The header ``X-Next-Cursor`` continues after the last record of this page: records
    written meanwhile are neither skipped nor repeated. ``follow=true`` streams instead.
    """
    # Read through short sessions of service.reads rather than SessionDep: a stream must
    # not keep the request's session (and its connection) open for as long as it follows.
    if follow:
        start = log_store.decode_cursor(cursor, "asc") if cursor else None
        return _stream(service, where, start, limit)
    after_id = log_store.decode_cursor(cursor, order) if cursor else None
    rows = reads.log_page(service.db, where, limit, skip, after_id, order)
    records = [log_public(r) for r in rows]
    if rows:
        response.headers[NEXT_CURSOR_HEADER] = log_store.encode_cursor(rows[-1].id, order)
    elif cursor:
        response.headers[NEXT_CURSOR_HEADER] = cursor
    return records


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream_logs(
    service: ServiceDep,
    where: FilterDep,
    limit: Annotated[int, Query(ge=0, le=1000, description="Earlier records sent first")] = 100,
    cursor: Annotated[str | None, Query(description="Start after this page cursor")] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this id")] = None,
) -> StreamingResponse:
    """Server-Sent Events: each matching record as it is stored, ``id`` = record id.

    Starts after ``Last-Event-ID`` (a reconnecting EventSource sends it), else after
    ``cursor``, else with the whole run (``run_id``) or the ``limit`` latest records.
    """
    start: int | None = None
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise InvalidCursor(
                f"Last-Event-ID {last_event_id[:40]!r} is not a record id: send the 'id' "
                "of the last event received"
            )
        start = int(last_event_id)
    elif cursor:
        start = log_store.decode_cursor(cursor, "asc")
    return _stream(service, where, start, limit)


def _stream(
    service: ServiceDep, where: log_store.LogFilter, start: int | None, backlog: int
) -> StreamingResponse:
    if start is None and where.run_id:
        start = 0
    if start is None:
        start = reads.backlog_start(service.db, where, backlog)
    settings = service.settings
    timing = StreamTiming(settings.api.log_follow_poll_s, settings.api.sse_heartbeat_s)
    events = log_events(service.db, service.log_notifier, where, start, timing)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
