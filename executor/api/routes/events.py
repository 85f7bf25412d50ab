"""Events from the platform: stored with their invocations, answered 202 at once."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from executor.api.deps import EventsWrite, ServiceDep, get_service
from executor.intake.json_scan import check_json_body, plainly_fine
from executor.schemas import EventAccepted, EventIn


class ScannedBodyRoute(APIRoute):
    """Scans the raw body (``executor.intake.json_scan``) before FastAPI parses it: an event nested
    too deep is refused before a parser builds it, and one holding text no plugin could be
    handed is refused with the path of that text (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        parse_and_run = super().get_route_handler()

        async def scan_then_run(request: Request) -> Response:
            max_depth = get_service(request).settings.max_event_depth
            # Only a body the cheap checks cannot clear is walked token by token, in a thread.
            body = await request.body()
            if not plainly_fine(body, max_depth):
                await run_in_threadpool(check_json_body, body, max_depth)
            return await parse_and_run(request)  # the body is cached: read once

        return scan_then_run


router = APIRouter(prefix="/v1/events", tags=["events"], route_class=ScannedBodyRoute)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
def post_event(event: EventIn, caller: EventsWrite, service: ServiceDep) -> Response:
    """Queue one invocation per plugin of the project's tenant active on the project for
    this event type (404 for a project that is not the key's tenant's).

    An ``id`` seen before answers 200 with the invocations of the first post. A body nested
    deeper than ``EXECUTOR_MAX_EVENT_DEPTH`` answers 422 ``event_too_deep``; a string or key
    that is not valid Unicode (not UTF-8, a lone surrogate escape) 422 ``invalid_unicode``;
    both name the path in ``field``.
    """
    ingested = service.post_event(caller, event)
    accepted = EventAccepted(event_id=ingested.event_id, invocations=ingested.invocation_ids)
    # A ready response: FastAPI would otherwise validate the model again, for a plain
    # function in a second worker thread (the profile's second thread hop per event).
    return Response(
        accepted.model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED if ingested.created else status.HTTP_200_OK,
        media_type="application/json",
    )
