"""Queries on log records: insert, filtered keyset paging, follow-up reads, purge.

Paging is by record id (ids only grow), so a cursor names the last record a reader saw and
the next page starts right after it: records written between two pages are neither skipped
nor repeated. ``skip`` (Kili's offset paging) is kept for compatibility.

That needs ids to become visible in id order. SQLite lets one writer in at a time, so they
do. PostgreSQL takes ids from a sequence at INSERT, and two writers can commit in the other
order: a reader that saw the later id first would page past the earlier one. So on
PostgreSQL every transaction that adds records first takes one transaction-level advisory
lock (held until its commit): log writers commit one at a time, in the order of their ids.
The same transaction announces the records (``NOTIFY``, delivered at its commit) to the
followers of every process (``executor/store/listen.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Select, delete, func, insert, select, text
from sqlalchemy.orm import Session

from executor.bounds import MAX_INT64
from executor.errors import InvalidCursor
from executor.store.tables import LogRecord

__all__ = [
    "LEVELS",
    "LOG_CHANNEL",
    "LogFilter",
    "add_records",
    "announce",
    "decode_cursor",
    "delete_ids",
    "delete_runs_logs",
    "encode_cursor",
    "last_id",
    "last_seq",
    "levels_at_least",
    "old_record_ids",
    "query_page",
    "query_records",
    "records_after",
]

# Minimum-level filtering keeps SYSTEM lines (timeouts, OOM kills, truncation): a reader
# asking for "errors only" must still learn why a run ended.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
Order = Literal["asc", "desc"]
CURSOR_PREFIX = "lr1:"
# The advisory lock key of log writers (any constant unique among this database's advisory
# locks: "plogwrit" in ASCII) and the channel their commits are announced on.
LOG_WRITER_LOCK = 0x706C6F6777726974
LOG_CHANNEL = "executor_log_records"
_ANNOUNCE = text(f"SELECT pg_notify('{LOG_CHANNEL}', '')")  # every run's end sends it


def levels_at_least(level: str) -> list[str]:
    """The log types shown for a minimum ``level`` (SYSTEM always included)."""
    return [*LEVELS[LEVELS.index(level) :], "SYSTEM"]


def encode_cursor(record_id: int, order: Order) -> str:
    """An opaque cursor: continue after ``record_id`` in ``order``."""
    raw = f"{CURSOR_PREFIX}{order}:{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> int:
    """The record id a cursor continues after; InvalidCursor if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, cursor_order, record_id = raw.split(":")
        value = int(record_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor(
            f"cursor {cursor[:60]!r} is not a cursor this server issued: pass the "
            "'next_cursor' of the previous page unchanged, or omit it to start over"
        ) from exc
    if f"{prefix}:" != CURSOR_PREFIX or not 0 <= value <= MAX_INT64:
        raise InvalidCursor(f"cursor {cursor[:60]!r} is not a cursor this server issued")
    if cursor_order != order:
        raise InvalidCursor(
            f"cursor was issued for order={cursor_order}, not order={order}: "
            "keep the same order while paging"
        )
    return value


@dataclass(frozen=True)
class LogFilter:
    """The filters of a log query; None means "any" (``tenant_id`` None: every tenant's)."""

    tenant_id: str | None = None
    project_id: str | None = None
    plugin_name: str | None = None
    run_id: str | None = None
    level: str | None = None
    start_date: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def apply(self, query: Select[tuple[LogRecord]]) -> Select[tuple[LogRecord]]:
        """``query`` restricted to the records matching every filter."""
        equal = {
            LogRecord.tenant_id: self.tenant_id,
            LogRecord.project_id: self.project_id,
            LogRecord.plugin_name: self.plugin_name,
            LogRecord.run_id: self.run_id,
        }
        for column, value in equal.items():
            if value is not None:
                query = query.where(column == value)
        if self.level is not None and self.level != "DEBUG":
            query = query.where(LogRecord.log_type.in_(levels_at_least(self.level)))
        if self.start_date is not None:
            query = query.where(LogRecord.created_at >= self.start_date)
        if self.until is not None:
            query = query.where(LogRecord.created_at < self.until)
        if self.text:
            pattern = "%" + _escape_like(self.text) + "%"
            query = query.where(LogRecord.content.ilike(pattern, escape="\\"))
        return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def add_records(session: Session, records: Sequence[dict[str, object]]) -> None:
    """Insert a batch of log records (dicts of LogRecord columns).

    On PostgreSQL the transaction waits for the log writers' lock first (see the module
    docstring): call it as the transaction's last lock-taking statement but the run's own
    row, which a writer holds already (``fence``), so no lock is awaited while it is held.
    """
    if not records:
        return
    if _is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOG_WRITER_LOCK})
        announce(session)
    session.execute(insert(LogRecord), list(records))


def announce(session: Session) -> None:
    """Tell the log followers of every process, when this transaction commits, to read the
    store again (new records, or a followed run ended). PostgreSQL only: on SQLite there
    is no other process to tell (they poll)."""
    if _is_postgresql(session):
        session.connection().execute(_ANNOUNCE)


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def query_page(
    session: Session,
    where: LogFilter,
    *,
    limit: int = 100,
    skip: int = 0,
    after_id: int | None = None,
    order: Order = "asc",
) -> list[LogRecord]:
    """One page of matching records in id order; ``after_id`` continues a cursor."""
    query = where.apply(select(LogRecord))
    if after_id is not None:
        query = query.where(LogRecord.id > after_id if order == "asc" else LogRecord.id < after_id)
    sort = LogRecord.id.asc() if order == "asc" else LogRecord.id.desc()
    return list(session.scalars(query.order_by(sort).offset(skip).limit(limit)))


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
    where = LogFilter(
        project_id=project_id, plugin_name=plugin_name, run_id=run_id, start_date=start_date
    )
    return query_page(session, where, limit=limit, skip=skip)


def last_seq(session: Session, run_id: str) -> int:
    """The seq of the run's last record, 0 when it has none (seqs count across attempts)."""
    last = session.scalar(select(func.max(LogRecord.seq)).where(LogRecord.run_id == run_id))
    return int(last or 0)


def last_id(session: Session) -> int:
    """The newest record id (0 when there is none): following from here sends only new ones."""
    return int(session.scalar(select(func.max(LogRecord.id))) or 0)


def records_after(session: Session, where: LogFilter, after_id: int, limit: int) -> list[LogRecord]:
    """Matching records with an id above ``after_id``, oldest first (for live follow)."""
    return query_page(session, where, limit=limit, after_id=after_id)


def old_record_ids(session: Session, before: datetime, limit: int) -> list[int]:
    """Ids of up to ``limit`` records created before ``before`` (for batched purging)."""
    query = select(LogRecord.id).where(LogRecord.created_at < before)
    return list(session.scalars(query.order_by(LogRecord.created_at).limit(limit)))


def delete_ids(session: Session, ids: Sequence[int]) -> int:
    """Delete the records with these ids; how many went."""
    if not ids:
        return 0
    result = session.execute(delete(LogRecord).where(LogRecord.id.in_(list(ids))))
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_runs_logs(session: Session, run_ids: Sequence[str]) -> int:
    """Delete every record of these runs; how many went."""
    if not run_ids:
        return 0
    result = session.execute(delete(LogRecord).where(LogRecord.run_id.in_(list(run_ids))))
    return int(result.rowcount)  # type: ignore[attr-defined]
