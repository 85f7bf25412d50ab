"""Events from the platform: stored with their invocations, answered 202 at once."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from executor.api.deps import EventsWrite, ServiceDep
from executor.ingest import ingest_event
from executor.schemas import EventAccepted, EventIn

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
def post_event(
    event: EventIn, caller: EventsWrite, service: ServiceDep, response: Response
) -> EventAccepted:
    """Queue one invocation per plugin of the project's tenant active on the project for
    this event type (404 for a project that is not the key's tenant's).

    An ``id`` seen before answers 200 with the invocations of the first post.
    """
    ingested = ingest_event(service.db, caller, event)
    if ingested.created:
        service.metrics.events_received.inc()
        if ingested.invocation_ids:  # nothing to claim otherwise: spare the store a claim
            service.dispatcher.wake()
    else:
        response.status_code = status.HTTP_200_OK
    return EventAccepted(event_id=ingested.event_id, invocations=ingested.invocation_ids)
