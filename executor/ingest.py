"""Event ingest: one transaction stores the event and a queued invocation per match."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from executor.catalog import activation_events
from executor.schemas import EventIn
from executor.store import invocations as invocation_store
from executor.store import plugins as plugin_store
from executor.store.db import Database
from executor.store.tables import Invocation

__all__ = ["Ingested", "ingest_event"]


@dataclass(frozen=True)
class Ingested:
    event_id: str
    invocation_ids: list[str]
    created: bool  # False when the idempotency key was seen before


def ingest_event(db: Database, event_in: EventIn) -> Ingested:
    """Store the event and its invocations; an id seen before returns the first result."""
    with db.write_session() as session:
        if event_in.id is not None:
            existing = invocation_store.event_invocation_ids(session, event_in.id)
            if existing is not None:
                return Ingested(event_in.id, existing, created=False)
        event = invocation_store.add_event(
            session,
            id=event_in.id,
            type=event_in.type,
            project_id=event_in.project_id,
            asset_id=event_in.asset_id,
            label=event_in.label,
            payload=event_in.payload,
        )
        invocation_ids: list[str] = []
        for activation in plugin_store.list_activations(session, project_id=event_in.project_id):
            version = plugin_store.activation_version(activation)
            if version is None:
                continue
            patterns = activation_events(activation, version)
            if not any(fnmatchcase(event_in.type, p) for p in patterns):
                continue
            invocation = Invocation(
                event_id=event.id,
                plugin_id=activation.plugin_id,
                version_id=version.id,
                plugin_name=activation.plugin.name,
                version_number=version.number,
                project_id=event_in.project_id,
                event_type=event_in.type,
                asset_id=event_in.asset_id,
                image_id=version.image_id,
                queued_at=event.received_at,
                max_retries=activation.max_retries,
            )
            session.add(invocation)
            session.flush()
            invocation_ids.append(invocation.id)
        return Ingested(event.id, invocation_ids, created=True)
