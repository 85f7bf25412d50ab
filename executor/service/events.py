"""Event ingest: one transaction stores the event and a queued invocation per match."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from executor.errors import Conflict, NotFound
from executor.schemas import EventIn
from executor.service.catalog import activation_events
from executor.store import ingest as ingest_store
from executor.store import plugins as plugin_store
from executor.store.db import Connection, Database
from executor.tenancy.access import Caller

__all__ = ["Ingested", "ingest_event"]


@dataclass(frozen=True)
class Ingested:
    event_id: str
    invocation_ids: list[str]
    created: bool  # False when the idempotency key was seen before


def _event_tenant(caller: Caller, project_id: str, owner: str | None) -> str:
    """The tenant whose plugins the event runs: its project's (``owner``). A tenant key may
    only post for its own projects (NotFound otherwise); the operator for any."""
    if owner == caller.tenant_id or (caller.is_operator and owner is not None):
        return owner
    if caller.is_operator:  # a project no tenant has: nothing is active on it
        return caller.tenant_id
    raise NotFound(
        f"no project {project_id!r} for tenant {caller.tenant_id!r}: the operator assigns "
        "projects to tenants"
    )


def _first_post(connection: Connection, event_id: str, tenant_id: str) -> Ingested | None:
    """The answer to an event id seen before (Conflict if another tenant's); None if new."""
    first = ingest_store.stored_event(connection, event_id)
    if first is None:
        return None
    first_tenant, ids = first
    if first_tenant != tenant_id:
        raise Conflict(f"event id {event_id!r} is taken: send another idempotency key")
    return Ingested(event_id, ids, created=False)


def _runs(
    event_type: str, activations: list[ingest_store.ProjectActivation]
) -> list[tuple[ingest_store.ProjectActivation, ingest_store.RunnableVersion]]:
    """Each activation that runs on ``event_type``, with the version it runs."""
    runs = []
    for activation in activations:
        version = plugin_store.pick_version(
            activation.versions, activation.current_version_id, activation.version_number
        )
        if version is None:
            continue
        if any(fnmatchcase(event_type, p) for p in activation_events(activation, version)):
            runs.append((activation, version))
    return runs


def ingest_event(
    db: Database, writer: ingest_store.EventWriter, caller: Caller, event_in: EventIn
) -> Ingested:
    """Store the event and its invocations, which only run plugins of the project's
    tenant; an id seen before returns the first result. Committed before it returns: the
    event with its invocations, in one write (``executor.store.ingest.EventWriter``)."""
    with db.autocommit_connection() as connection:
        project = ingest_store.project_state(connection, event_in.project_id)
        tenant_id = _event_tenant(caller, event_in.project_id, project.tenant_id)
        if event_in.id is not None and (first := _first_post(connection, event_in.id, tenant_id)):
            return first
    event = ingest_store.new_event(
        event_id=event_in.id,
        tenant_id=tenant_id,
        type=event_in.type,
        project_id=event_in.project_id,
        asset_id=event_in.asset_id,
    )
    rows = ingest_store.event_rows(
        event, event_in.label, event_in.payload, _runs(event_in.type, project.activations)
    )
    try:
        writer.write(rows)
    except ingest_store.EventIdTaken:
        # The same id posted at the same time, and the other post's write came first.
        with db.autocommit_connection() as connection:
            first = _first_post(connection, event.id, tenant_id)
        if first is None:
            raise
        return first
    return Ingested(event.id, rows.invocation_ids, created=True)
