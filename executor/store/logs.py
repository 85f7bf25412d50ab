"""Queries on log records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from executor.store.tables import LogRecord

__all__ = ["add_records", "query_records"]


def add_records(session: Session, records: Sequence[dict[str, object]]) -> None:
    """Insert a batch of log records (dicts of LogRecord columns)."""
    if records:
        session.execute(insert(LogRecord), list(records))


def query_records(
    session: Session,
    *,
    project_id: str | None = None,
    plugin_name: str | None = None,
    run_id: str | None = None,
    start_date: datetime | None = None,
    limit: int = 100,
    skip: int = 0,
) -> list[LogRecord]:
    """Log records matching every given filter, oldest first (Kili's parameters + run_id)."""
    query = select(LogRecord)
    if project_id is not None:
        query = query.where(LogRecord.project_id == project_id)
    if plugin_name is not None:
        query = query.where(LogRecord.plugin_name == plugin_name)
    if run_id is not None:
        query = query.where(LogRecord.run_id == run_id)
    if start_date is not None:
        query = query.where(LogRecord.created_at >= start_date)
    return list(session.scalars(query.order_by(LogRecord.id).offset(skip).limit(limit)))
