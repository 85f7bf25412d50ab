"""The envelope: the one JSON document written to a plugin container's stdin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "ApiInfo",
    "Envelope",
    "EnvelopeEvent",
]


class ApiInfo(BaseModel):
    """Where the plugin reaches the platform API: the forwarder URL, its token and socket."""

    url: str
    token: str
    socket: str | None = Field(None, description="Gateway socket the forwarder relays to.")


class EnvelopeEvent(BaseModel):
    type: str
    asset_id: str | None
    label: dict[str, Any] | None
    payload: dict[str, Any] | None


class Envelope(BaseModel):
    """The one JSON document written to a plugin container's stdin."""

    invocation_id: str
    plugin: str
    version: int
    project_id: str
    event: EnvelopeEvent
    api: ApiInfo
    deadline: datetime

    def wire(self) -> bytes:
        """The bytes written to the container's stdin: one line (JSON escapes every newline
        in a string). The runtime parses that line as soon as it has it, without waiting
        for the end of stdin, which the engine relays a few milliseconds later."""
        return self.model_dump_json().encode() + b"\n"
