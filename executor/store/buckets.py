"""Tenant keys' token buckets in the store: one statement a take, exact across processes.

A take is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: a key's first take makes
its bucket full less the take; a later one refills the bucket by the time since the last
take, on the database's clock (the processes' own clocks never enter), takes if enough is
there, and reads back whether it did. The upsert's row lock orders the takes of one key
from every process, each seeing the one before: N API processes give a key its limit
once. Run it on an autocommit connection: on PostgreSQL one round trip, no BEGIN/COMMIT.

On PostgreSQL the table is UNLOGGED (migration 0026): a take writes no WAL, so its commit
waits for no disk flush. The price: after a PostgreSQL crash the table is empty, and every
key starts again with full buckets, which a rate limit can afford.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Connection, Float, Table, bindparam, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from executor.store.clock import db_epoch
from executor.store.tables import KeyBucket

__all__ = ["Taken", "take"]

BUCKETS: Table = KeyBucket.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Taken:
    """A take's outcome: whether it was granted, and the tokens left after it (granted) or
    there (refused: the caller waits for the missing ones)."""

    granted: bool
    tokens: float


def take(
    connection: Connection, key_id: str, kind: str, amount: float, capacity: float, rate: float
) -> Taken:
    """Take ``amount`` tokens from ``key_id``'s ``kind`` bucket, which holds up to
    ``capacity`` and refills at ``rate`` per second."""
    first_granted = amount <= capacity
    row = connection.execute(
        _statement(connection.dialect.name),
        {
            "key_id": key_id,
            "kind": kind,
            "amount": amount,
            "capacity": capacity,
            "rate": rate,
            "first_tokens": capacity - amount if first_granted else capacity,
            "first_granted": first_granted,
        },
    ).one()
    return Taken(bool(row[0]), float(row[1]))


@functools.cache
def _statement(dialect: str) -> ReturningInsert[Any]:
    """The take, built once per dialect (its values are bound parameters)."""
    amount, capacity = bindparam("amount", type_=Float()), bindparam("capacity", type_=Float())
    rate = bindparam("rate", type_=Float())
    now = db_epoch()
    columns = BUCKETS.c
    # A clock stepped back refills nothing rather than draining the bucket.
    elapsed = case((now > columns.updated_s, now - columns.updated_s), else_=0.0)
    grown = columns.tokens + elapsed * rate
    refilled = case((grown > capacity, capacity), else_=grown)
    enough = refilled >= amount
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(BUCKETS)
        .values(
            key_id=bindparam("key_id"),
            kind=bindparam("kind"),
            tokens=bindparam("first_tokens", type_=Float()),
            updated_s=now,
            granted=bindparam("first_granted", type_=Boolean()),
        )
        .on_conflict_do_update(
            index_elements=[columns.key_id, columns.kind],
            # Every right-hand side reads the row as it was before this take.
            set_={
                "tokens": case((enough, refilled - amount), else_=refilled),
                "updated_s": now,
                "granted": enough,
            },
        )
        .returning(columns.granted, columns.tokens)
    )
