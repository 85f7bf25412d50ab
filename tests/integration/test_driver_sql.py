"""Statements run on the driver's cursor (``executor.store.driver_sql``), on a real
PostgreSQL: they read what SQLAlchemy's ORM would load, fail as SQLAlchemy fails, and the
event write announces only runs."""

from __future__ import annotations

from datetime import UTC

import psycopg
import pytest
from sqlalchemy import bindparam, inspect, select
from sqlalchemy.exc import OperationalError

from executor.store import ingest as ingest_store
from executor.store.announce import announcement, encoded
from executor.store.db import Database, is_store_outage
from executor.store.driver_sql import DriverStatement, columns_of, detached, width
from executor.store.listen import QUEUE_CHANNEL
from executor.store.tables import Invocation, Project, Webhook
from tests.store_rows import add_run


@pytest.fixture
def db(postgres_db: Database) -> Database:
    return postgres_db


def plain(url: str) -> str:
    """The store's URL as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


# A run and its webhook (none: the outer join gives NULLs).
RUN_AND_WEBHOOK = DriverStatement.of(
    select(
        *columns_of(Invocation, Invocation.__table__.c),
        *columns_of(Webhook, Webhook.__table__.c),
    )
    .outerjoin(Webhook, Webhook.version_id == Invocation.version_id)
    .where(Invocation.id == bindparam("run"))
)


def test_a_row_read_on_the_driver_is_the_instance_the_orm_loads(db: Database) -> None:
    attempts = [{"attempt": 1, "reason": "lease expired"}]
    run = add_run(db, attempts=attempts, lease_generation=2, max_retries=3)
    with db.session() as session:
        (row,) = RUN_AND_WEBHOOK.rows(session.connection(), {"run": run.id})
        loaded = session.get(Invocation, run.id)
    assert loaded is not None
    taken = detached(Invocation, row[: width(Invocation)])
    assert taken is not None and inspect(taken).detached
    for prop in inspect(Invocation).column_attrs:
        assert getattr(taken, prop.key) == getattr(loaded, prop.key), prop.key
    assert taken.queued_at.tzinfo is UTC and taken.attempts == attempts
    assert detached(Webhook, row[width(Invocation) :]) is None


def test_a_lost_connection_fails_as_sqlalchemy_fails_and_is_not_pooled_again(
    db: Database, postgres_url: str
) -> None:
    """The server ends the session: the error is SQLAlchemy's (a store outage, which runs
    wait out), and the connection is invalidated."""
    admin = psycopg.connect(plain(postgres_url), autocommit=True)
    try:
        with db.engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(OperationalError) as raised:
                RUN_AND_WEBHOOK.rows(connection, {"run": "none"})
            assert is_store_outage(raised.value)
            assert connection.invalidated
    finally:
        admin.close()


def event_rows(event_id: str, runs: list[tuple[str, str]]) -> ingest_store.EventRows:
    """An event on project q running each (plugin id, version id) of ``runs``."""
    new = ingest_store.new_event(
        event_id=event_id, tenant_id="default", type="onSubmit", project_id="q", asset_id="a"
    )
    placement = encoded(("runc", None))
    activations = [
        (
            ingest_store.ProjectActivation(plugin, "p", version, None, 0, None, [], placement),
            ingest_store.RunnableVersion(version, 1, "active", None, ["on_submit"], "sha256:1"),
        )
        for plugin, version in runs
    ]
    return ingest_store.event_rows(new, {"k": 1}, None, activations)


def test_the_event_write_announces_runs_only(db: Database, postgres_url: str) -> None:
    """An event that runs nothing notifies no dispatcher; one with runs does, at its
    commit, with where they may go. The first notification heard is the second write's."""
    with db.session() as session:
        session.add(Project(id="q"))
    run = add_run(db, project_id="q")
    listener = psycopg.connect(plain(postgres_url), autocommit=True)
    try:
        listener.execute(f"LISTEN {QUEUE_CHANNEL}")
        alone = event_rows("alone", [])
        with_run = event_rows("with-run", [(run.plugin_id, run.version_id)])
        with db.autocommit_connection() as connection:
            assert ingest_store.write_events(db, connection, [alone]) == [None]
            assert ingest_store.write_events(db, connection, [with_run]) == [None]
        heard = next(listener.notifies(timeout=60, stop_after=1))
        assert heard.payload == announcement(with_run.placements) == '[["runc",null]]'

    finally:
        listener.close()
    with db.session() as session:
        stored = session.get(Invocation, with_run.invocation_ids[0])
        assert stored is not None
        assert (stored.status, stored.attempt, stored.attempts, stored.cold_start) == (
            "queued",
            0,
            [],
            True,
        )
