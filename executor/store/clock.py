"""The database's clock: the one clock that heartbeats, leases and "lost" decisions use.

Nodes' clocks drift (or are set wrong): a node ten minutes ahead that compared heartbeats
with its own clock found every other node silent for ten minutes. So these times are
taken in the statement, by the database: ``now()`` on PostgreSQL (the transaction's start,
one value for the whole transaction), SQLite's own ``'now'`` on SQLite (there the one
process's clock is the database's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Float, bindparam, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FunctionElement

from executor.store.tables import UTCDateTime

__all__ = ["database_now", "db_epoch", "db_now"]


class db_now(FunctionElement[datetime]):  # lower case: a SQL function, used like func.now()
    """The database's now plus ``offset_s`` seconds (negative: in the past), as a UTC
    datetime comparable with (and storable in) the tables' datetime columns."""

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset_s: float | BindParameter[float] = 0.0) -> None:
        # A bound parameter: the offset given at execution, for a statement built once.
        if not isinstance(offset_s, BindParameter):
            offset_s = bindparam(None, float(offset_s), type_=Float())
        super().__init__(offset_s)


@compiles(db_now)
def _postgresql(element: db_now, compiler: Any, **kw: Any) -> str:
    # The columns are ``timestamp without time zone`` holding UTC: now() in UTC, whatever
    # the server's TimeZone.
    offset = compiler.process(element.clauses, **kw)
    return f"((now() AT TIME ZONE 'UTC') + make_interval(secs => {offset}))"


@compiles(db_now, "sqlite")
def _sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    # The text SQLAlchemy stores a datetime as on SQLite (microseconds: 6 digits; 'now' has
    # milliseconds), so the values compare as text with the stored ones.
    offset = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('%+.6f seconds', {offset}))"


class db_epoch(FunctionElement[float]):  # lower case: a SQL function
    """The database's now in seconds since the epoch (a float): for arithmetic in a
    statement, as token buckets refill (``executor.store.buckets``)."""

    type = Float()
    inherit_cache = True
    name = "db_epoch"


@compiles(db_epoch)
def _postgresql_epoch(element: db_epoch, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from now())::float8"


@compiles(db_epoch, "sqlite")
def _sqlite_epoch(element: db_epoch, compiler: Any, **kw: Any) -> str:
    # julianday('now') has milliseconds, and one value for the whole statement.
    return "((julianday('now') - 2440587.5) * 86400.0)"


def database_now(session: Session) -> datetime:
    """The database's now (aware UTC). On PostgreSQL, the start of the session's
    transaction: read it first in a transaction to get the time of the read."""
    now: datetime | None = session.scalar(select(db_now()))
    assert now is not None
    return now
