"""Putting invocations on the queue (a new event's runs, a replay) and taking a deleted
plugin's queued runs off it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from executor.errors import Conflict
from executor.statuses import TERMINAL_STATUSES, InvocationStatus
from executor.store.queries import get_invocation
from executor.store.run_errors import RunError
from executor.store.tables import Event, Invocation, Plugin, utcnow

__all__ = ["add_event", "add_invocation", "plugin_deleted", "replay"]


def add_event(session: Session, **fields: Any) -> Event:
    event = Event(**{k: v for k, v in fields.items() if v is not None})
    session.add(event)
    session.flush()
    return event


def add_invocation(session: Session, invocation: Invocation) -> Invocation:
    """Store a new invocation; its id is set on return."""
    session.add(invocation)
    session.flush()
    return invocation


def replay(
    session: Session, invocation_id: str, version_id: str, version_number: int
) -> Invocation:
    """A new queued invocation of a finished one's event, linked to it."""
    original = get_invocation(session, invocation_id)
    if original.status not in TERMINAL_STATUSES:
        raise Conflict(
            f"invocation {invocation_id} is {original.status}: only a finished invocation "
            "can be replayed; wait for it to end"
        )
    copy = Invocation(
        tenant_id=original.tenant_id,
        event_id=original.event_id,
        plugin_id=original.plugin_id,
        version_id=version_id,
        plugin_name=original.plugin_name,
        version_number=version_number,
        project_id=original.project_id,
        event_type=original.event_type,
        asset_id=original.asset_id,
        max_retries=original.max_retries,
        replay_of=original.id,
    )
    session.add(copy)
    session.flush()
    session.refresh(copy)  # defaults the database filled in: readable after the session ends
    session.refresh(copy, ["gateway_calls"])  # none yet; loaded, as presenters read them
    return copy


def plugin_deleted(session: Session, plugin: Plugin) -> None:
    """Keep the runs of a plugin being deleted, marked as such; cancel those still queued
    (their version goes with the plugin). Running ones end as they would have."""
    now = utcnow()
    runs = update(Invocation).where(Invocation.plugin_id == plugin.id)
    error = f"canceled: the plugin {plugin.name!r} was deleted before this run started"
    failure = RunError.classified(InvocationStatus.CANCELED, error)
    session.execute(
        runs.where(Invocation.status == InvocationStatus.QUEUED).values(
            status=InvocationStatus.CANCELED,
            finished_at=now,
            error=error,
            error_type=failure.type,
            error_message=failure.message,
        )
    )
    session.execute(runs.values(plugin_deleted_at=now))
