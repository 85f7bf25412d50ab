"""Event ingest: one transaction stores the event and a queued invocation per match."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from executor.errors import Conflict, NotFound
from executor.schemas import EventIn
from executor.service.catalog import activation_events
from executor.store import invocations as invocation_store
from executor.store import plugins as plugin_store
from executor.store import tenants as tenant_store
from executor.store.db import Database, Session
from executor.store.tables import Invocation
from executor.tenancy.access import Caller

__all__ = ["Ingested", "ingest_event"]


@dataclass(frozen=True)
class Ingested:
    event_id: str
    invocation_ids: list[str]
    created: bool  # False when the idempotency key was seen before


def _event_tenant(session: Session, caller: Caller, project_id: str) -> str:
    """The tenant whose plugins the event runs: its project's. A tenant key may only post
    for its own projects (NotFound otherwise); the operator for any."""
    owner = tenant_store.project_tenant(session, project_id)
    if owner == caller.tenant_id or (caller.is_operator and owner is not None):
        return owner
    if caller.is_operator:  # a project no tenant has: nothing is active on it
        return caller.tenant_id
    raise NotFound(
        f"no project {project_id!r} for tenant {caller.tenant_id!r}: the operator assigns "
        "projects to tenants"
    )


def ingest_event(db: Database, caller: Caller, event_in: EventIn) -> Ingested:
    """Store the event and its invocations, which only run plugins of the project's
    tenant; an id seen before returns the first result."""
    with db.write_session() as session:
        tenant_id = _event_tenant(session, caller, event_in.project_id)
        first = invocation_store.find_event(session, event_in.id) if event_in.id else None
        if first is not None:
            if first.tenant_id != tenant_id:
                raise Conflict(f"event id {first.id!r} is taken: send another idempotency key")
            ids = invocation_store.event_invocation_ids(session, first.id) or []
            return Ingested(first.id, ids, created=False)
        event = invocation_store.add_event(
            session,
            tenant_id=tenant_id,
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
            if version is None or activation.plugin.tenant_id != tenant_id:
                continue
            patterns = activation_events(activation, version)
            if not any(fnmatchcase(event_in.type, p) for p in patterns):
                continue
            invocation = invocation_store.add_invocation(
                session,
                Invocation(
                    tenant_id=tenant_id,
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
                ),
            )
            invocation_ids.append(invocation.id)
        return Ingested(event.id, invocation_ids, created=True)
