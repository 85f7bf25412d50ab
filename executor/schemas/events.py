"""Events the platform posts (POST /v1/events) and the answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from executor.identifiers import EventId, ProjectId
from executor.schemas.base import Strict

__all__ = [
    "LABELED_EVENTS",
    "EventAccepted",
    "EventIn",
]

# Events whose handler gets ``(label, asset_id)`` as arguments: both must be in the event.
LABELED_EVENTS = frozenset({"onSubmit", "onReview"})


class EventIn(Strict):
    """A labeling event posted by the platform."""

    id: EventId | None = Field(None, description="Optional idempotency key.")
    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z][A-Za-z0-9_.*-]*$")
    project_id: ProjectId
    asset_id: str | None = Field(
        None, max_length=200, validate_default=True, description="Required for onSubmit, onReview."
    )
    label: dict[str, Any] | None = Field(
        None, validate_default=True, description="Required for onSubmit, onReview."
    )
    payload: dict[str, Any] | None = None

    @field_validator("asset_id", "label", mode="after")
    @classmethod
    def _given_to_the_handler(cls, value: object, info: ValidationInfo) -> object:
        event_type = info.data.get("type")
        if value is None and event_type in LABELED_EVENTS:
            raise PydanticCustomError(
                "missing",
                "Field required: {event_type} events hand it to the plugin's handler",
                {"event_type": event_type},
            )
        return value


class EventAccepted(BaseModel):
    event_id: str
    invocations: list[str]
