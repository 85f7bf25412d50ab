"""Queries on events and invocations: ingest, claim, finish."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from executor.errors import NotFound
from executor.store.tables import Event, Invocation, utcnow

__all__ = [
    "add_event",
    "claim",
    "event_invocation_ids",
    "finish",
    "get_invocation",
    "list_invocations",
    "mark_handler_started",
    "queued_ids",
    "requeue_running",
]


def add_event(session: Session, **fields: Any) -> Event:
    event = Event(**{k: v for k, v in fields.items() if v is not None})
    session.add(event)
    session.flush()
    return event


def event_invocation_ids(session: Session, event_id: str) -> list[str] | None:
    """The invocations of a stored event, or None if there is no such event."""
    if session.get(Event, event_id) is None:
        return None
    return list(
        session.scalars(
            select(Invocation.id).where(Invocation.event_id == event_id).order_by(Invocation.id)
        )
    )


def get_invocation(session: Session, invocation_id: str) -> Invocation:
    invocation = session.get(Invocation, invocation_id)
    if invocation is None:
        raise NotFound(f"no invocation {invocation_id!r}")
    return invocation


def list_invocations(
    session: Session,
    *,
    plugin_name: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    skip: int = 0,
) -> list[Invocation]:
    query = select(Invocation)
    if plugin_name is not None:
        query = query.where(Invocation.plugin_name == plugin_name)
    if project_id is not None:
        query = query.where(Invocation.project_id == project_id)
    if status is not None:
        query = query.where(Invocation.status == status)
    query = query.order_by(Invocation.queued_at.desc()).offset(skip).limit(limit)
    return list(session.scalars(query))


def queued_ids(session: Session, limit: int) -> list[str]:
    """The oldest queued invocations first (arrival order)."""
    return list(
        session.scalars(
            select(Invocation.id)
            .where(Invocation.status == "queued")
            .order_by(Invocation.queued_at, Invocation.id)
            .limit(limit)
        )
    )


def claim(session: Session, invocation_id: str) -> Invocation | None:
    """Move a queued invocation to running; None if someone else took it first."""
    result = session.execute(
        update(Invocation)
        .where(Invocation.id == invocation_id, Invocation.status == "queued")
        .values(status="running", started_at=utcnow(), attempt=Invocation.attempt + 1)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Invocation, invocation_id, populate_existing=True)


def mark_handler_started(session: Session, invocation_id: str, at: datetime) -> None:
    session.execute(
        update(Invocation).where(Invocation.id == invocation_id).values(handler_started_at=at)
    )


def finish(session: Session, invocation_id: str, **fields: Any) -> None:
    """Record the terminal state of a running invocation (status, exit code, error...)."""
    invocation = get_invocation(session, invocation_id)
    now = utcnow()
    for key, value in fields.items():
        setattr(invocation, key, value)
    invocation.finished_at = now
    if invocation.started_at is not None:
        invocation.duration_ms = int((now - invocation.started_at).total_seconds() * 1000)


def requeue_running(session: Session) -> int:
    """Hand invocations left ``running`` by a stopped process back to the queue."""
    result = session.execute(
        update(Invocation).where(Invocation.status == "running").values(status="queued")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
