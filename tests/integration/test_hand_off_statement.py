"""A run's hand-off and its token (``outcome_store.hand_off``) are fenced by the lease
generation: both are recorded, or neither. On PostgreSQL they are one statement in its own
transaction (``hand_off_with_token``), on SQLite two in one transaction; each store is
tested."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from executor.statuses import InvocationStatus
from executor.store import outcomes as outcome_store
from executor.store.db import Database
from executor.store.tables import Invocation, InvocationToken, utcnow
from tests.store_rows import add_run


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def hand_off(db: Database, run: Invocation, generation: int, token: str) -> bool:
    deadline = utcnow() + timedelta(seconds=30)
    handed = outcome_store.HandOff(run.id, generation, deadline, True, token, run.project_id)
    return outcome_store.hand_off(db, handed)


def test_the_lease_holder_records_the_deadline_and_the_token_in_one_statement(
    db: Database,
) -> None:
    run = add_run(db, status=InvocationStatus.RUNNING, lease_generation=3)
    assert hand_off(db, run, 3, "a" * 64)
    with db.session() as session:
        stored = session.get(Invocation, run.id)
        token = session.get(InvocationToken, "a" * 64)
        assert stored is not None and token is not None
        assert stored.deadline_at is not None and stored.cold_start is True
        assert (token.invocation_id, token.project_id) == (run.id, run.project_id)
        assert (token.lease_generation, token.expires_at) == (3, stored.deadline_at)
        assert token.created_at is not None and token.revoked_at is None


@pytest.mark.parametrize(
    "fields",
    [
        {"status": InvocationStatus.RUNNING, "lease_generation": 4},  # the lease moved on
        {"status": InvocationStatus.QUEUED, "lease_generation": 3},  # re-queued
    ],
)
def test_a_lost_lease_records_neither(db: Database, fields: dict[str, Any]) -> None:
    run = add_run(db, **fields)
    assert not hand_off(db, run, 3, "b" * 64)
    with db.session() as session:
        assert session.get(Invocation, run.id).deadline_at is None  # type: ignore[union-attr]
        assert session.scalars(select(InvocationToken)).all() == []


def test_on_postgresql_the_hand_off_alone_commits_without_waiting_for_the_flush(
    postgres_url: str,
) -> None:
    """The hand-off's own transaction turns ``synchronous_commit`` off (what a server crash
    could lose of it is a state the executor handles: see ``outcome_store``); the setting
    ends with that transaction, so the pooled connection's next commits wait for the flush
    again, and a lost lease sets nothing."""
    db = Database(postgres_url, pool_size=1)
    db.migrate()
    try:
        run = add_run(db, status=InvocationStatus.RUNNING, lease_generation=3)
        deadline = utcnow() + timedelta(seconds=30)

        def handed(generation: int, token: str) -> tuple[bool, str]:
            """The hand-off in a transaction held open to read the setting it leaves."""
            fields = (run.id, generation, deadline, False, token, run.project_id)
            with db.engine.connect() as connection, connection.begin():
                done = outcome_store.hand_off_with_token(connection, outcome_store.HandOff(*fields))
                return done, str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())

        assert handed(2, "c" * 64) == (False, "on")  # a lost lease: nothing written
        assert handed(3, "d" * 64) == (True, "off")
        with db.session() as session:  # the run's next attempt, handed off as a start does
            session.get(Invocation, run.id).lease_generation = 4  # type: ignore[union-attr]
        assert hand_off(db, run, 4, "e" * 64)
        with db.engine.connect() as connection:  # the one pooled connection, used by all
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        with db.session() as session:
            tokens = session.scalars(select(InvocationToken.token_sha256)).all()
            assert sorted(tokens) == ["d" * 64, "e" * 64]
    finally:
        db.dispose()
