"""Events from the platform: stored with their invocations, answered 202 at once."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from executor.api.deps import (
    EventsWrite,
    ServiceDep,
    bearer,
    bearer_key,
    get_service,
    require_events_write,
)
from executor.intake.json_scan import check_json_body, plainly_fine
from executor.schemas.events import EventAccepted, EventIn

_JSON = "application/json"


class EventRoute(APIRoute):
    """POST /v1/events, the busiest route, with two additions to FastAPI's handling.

    The raw body is scanned (``executor.intake.json_scan``) before anything parses it: an
    event nested too deep is refused before a parser builds it, and one holding text no
    plugin could be handed is refused with the path of that text (422).

    A post as the platform sends it — no ``X-Tenant``, a JSON body that is a valid event —
    is resolved by hand: a profile under load showed FastAPI's generic dependency solving
    at a fifth of an event's cost. Its key is decided by the route's own dependency
    (``require_events_write``, ``executor.api.deps.authorize`` as on every route), so both
    paths refuse a key alike and count it once. Anything else (an ``X-Tenant``, a body that
    does not validate) takes FastAPI's path, so every error and its order stay what the
    declared dependencies make them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        declared = super().get_route_handler()

        async def scan_then_run(request: Request) -> Response:
            service = get_service(request)
            max_depth = service.settings.api.max_event_depth
            # Only a body the cheap checks cannot clear is walked token by token, in a thread.
            body = await request.body()
            if not plainly_fine(body, max_depth):
                await run_in_threadpool(check_json_body, body, max_depth)
            event = _plain_event(request, body)
            if event is None:
                return await declared(request)  # the body is cached: read once
            # The route's own dependency decides on the key, as on FastAPI's path.
            presented = await bearer_key(await bearer(request))
            caller = await require_events_write(service, presented)
            return await post_event(event, caller, service)

        return scan_then_run


def _plain_event(request: Request, body: bytes) -> EventIn | None:
    """The event of a post as the platform sends it; None for anything else."""
    headers = request.headers
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if "x-tenant" in headers or content_type != _JSON:
        return None
    try:
        return EventIn.model_validate_json(body)
    except ValidationError:
        return None


router = APIRouter(prefix="/v1/events", tags=["events"], route_class=EventRoute)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def post_event(event: EventIn, caller: EventsWrite, service: ServiceDep) -> Response:
    """Queue one invocation per plugin of the project's tenant active on the project for
    this event type (404 for a project that is not the key's tenant's).

    An ``id`` seen before answers 200 with the invocations of the first post. A body nested
    deeper than ``EXECUTOR_MAX_EVENT_DEPTH`` answers 422 ``event_too_deep``; a string or key
    that is not valid Unicode (not UTF-8, a lone surrogate escape) 422 ``invalid_unicode``;
    both name the path in ``field``.
    """
    ingested = await service.post_event(caller, event)
    accepted = EventAccepted(event_id=ingested.event_id, invocations=ingested.invocation_ids)
    # A ready response: FastAPI would otherwise validate the model again.
    return Response(
        accepted.model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED if ingested.created else status.HTTP_200_OK,
        media_type="application/json",
    )
