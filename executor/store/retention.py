"""Queries the retention task runs: find old or over-budget rows, delete them in batches.

Every function here does one small step; the caller runs each in its own short
transaction so that ingest and log writers are never held up for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from executor.statuses import TERMINAL_STATUSES
from executor.store.tables import Event, Invocation, LogRecord

__all__ = [
    "delete_invocations",
    "delete_orphan_events",
    "finished_before",
    "oldest_finished_runs",
    "plugins_over_budget",
]

_FINISHED = Invocation.status.in_(sorted(TERMINAL_STATUSES))


def finished_before(session: Session, before: datetime, limit: int) -> list[str]:
    """Ids of up to ``limit`` finished invocations that ended before ``before``."""
    query = (
        select(Invocation.id)
        .where(_FINISHED, Invocation.finished_at < before)
        .order_by(Invocation.finished_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def delete_invocations(session: Session, ids: Sequence[str]) -> tuple[int, int]:
    """Delete these invocations and their log records; (invocations, records) deleted."""
    if not ids:
        return 0, 0
    records = session.execute(delete(LogRecord).where(LogRecord.run_id.in_(list(ids))))
    runs = session.execute(delete(Invocation).where(Invocation.id.in_(list(ids))))
    return int(runs.rowcount), int(records.rowcount)  # type: ignore[attr-defined]


def delete_orphan_events(session: Session, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events received before ``before`` that no invocation uses."""
    orphan = ~exists().where(Invocation.event_id == Event.id)
    ids = list(
        session.scalars(select(Event.id).where(Event.received_at < before, orphan).limit(limit))
    )
    if not ids:
        return 0
    return int(session.execute(delete(Event).where(Event.id.in_(ids))).rowcount)  # type: ignore[attr-defined]


def plugins_over_budget(session: Session, budget_bytes: int) -> dict[tuple[str, str], int]:
    """(tenant, plugin name) → log bytes of its finished runs, for the plugins above the
    budget (two tenants' plugins of one name have a budget each)."""
    total = func.sum(Invocation.log_bytes)
    query = (
        select(Invocation.tenant_id, Invocation.plugin_name, total)
        .where(_FINISHED)
        .group_by(Invocation.tenant_id, Invocation.plugin_name)
        .having(total > budget_bytes)
    )
    return {(tenant, name): int(size) for tenant, name, size in session.execute(query)}


def oldest_finished_runs(
    session: Session, plugin: tuple[str, str], limit: int
) -> list[tuple[str, int]]:
    """(id, log bytes) of the oldest finished runs of a (tenant, plugin name), oldest first."""
    tenant_id, plugin_name = plugin
    query = (
        select(Invocation.id, Invocation.log_bytes)
        .where(Invocation.tenant_id == tenant_id, Invocation.plugin_name == plugin_name, _FINISHED)
        .order_by(Invocation.finished_at, Invocation.id)
        .limit(limit)
    )
    return [(run_id, int(size)) for run_id, size in session.execute(query)]
