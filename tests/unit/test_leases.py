"""A dispatcher's lease upkeep (``executor.run.leases.LeaseKeeper``) on its own: a real
SQLite store and the ``FakeEngine``, no dispatcher loop. It renews the leases of what this
process runs, re-queues runs whose lease expired elsewhere and ends ``dead`` those at their
last attempt, telling live followers only when one ended."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from executor.engine.fake import FakeEngine
from executor.gateway.live import LiveTokens
from executor.metrics import Metrics, QueueFigures
from executor.run.leases import LeaseKeeper
from executor.run.node import NodeMembership
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.store.db import Database
from executor.store.tables import Event, Invocation, utcnow
from tests.store_rows import add_run

OWNER = "this-process"
MAX_ATTEMPTS = 2


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def running(db: Database, owner: str, attempt: int, expires_in_s: float) -> str:
    """A running invocation held by ``owner``, its lease expiring ``expires_in_s`` from now
    (each of an event of its own, of the one plugin ``add_run`` made)."""
    fields: dict[str, Any] = {
        "status": InvocationStatus.RUNNING,
        "attempt": attempt,
        "lease_owner": owner,
        "lease_generation": 1,
        "lease_expires_at": utcnow() + timedelta(seconds=expires_in_s),
    }
    with db.session() as session:
        first = session.scalars(select(Invocation)).first()
        if first is None:
            return add_run(db, **fields).id
        event = Event(type="onSubmit", project_id="pr")
        session.add(event)
        session.flush()
        run = Invocation(
            event_id=event.id,
            plugin_id=first.plugin_id,
            version_id=first.version_id,
            plugin_name=first.plugin_name,
            version_number=first.version_number,
            project_id="pr",
            event_type="onSubmit",
            **fields,
        )
        session.add(run)
        session.flush()
        return run.id


def stored(db: Database, run_id: str) -> Invocation:
    with db.session() as session:
        row = session.get(Invocation, run_id)
        assert row is not None
        session.expunge(row)
        return row


def keeper(db: Database, tmp_path: Path, held: list[str], told: list[str]) -> LeaseKeeper:
    settings = Settings(
        data_dir=tmp_path,
        operator_key="pe_op_leases-0123456789",
        lease_s=600.0,
        retry_max_attempts=MAX_ATTEMPTS,
    )
    engine = FakeEngine()
    node = NodeMembership(db, engine, settings, OWNER)
    node.join()
    metrics = Metrics(lambda: QueueFigures({}, None, {}))
    return LeaseKeeper(
        db,
        engine,
        settings,
        metrics,
        node,
        OWNER,
        lambda: held,
        LiveTokens(),
        lambda: told.append("ended"),
    )


def test_expired_runs_are_requeued_or_dead_and_held_ones_renewed(
    db: Database, tmp_path: Path
) -> None:
    held = running(db, OWNER, attempt=1, expires_in_s=5)
    orphan = running(db, "a-dead-process", attempt=1, expires_in_s=-5)
    last = running(db, "a-dead-process", attempt=MAX_ATTEMPTS, expires_in_s=-5)
    told: list[str] = []
    held_until = stored(db, held).lease_expires_at
    assert held_until is not None

    keeper(db, tmp_path, [held], told).maintain()

    assert stored(db, orphan).status == InvocationStatus.QUEUED
    ended = stored(db, last)
    assert ended.status == InvocationStatus.DEAD
    assert ended.error == (
        f"gave up after {MAX_ATTEMPTS} attempts: lease expired: the executor running it stopped"
    )
    renewed = stored(db, held)
    assert renewed.status == InvocationStatus.RUNNING
    assert renewed.lease_expires_at is not None and renewed.lease_expires_at > held_until
    assert told == ["ended"]  # one run ended: its followers are told, once


def test_requeued_runs_alone_tell_no_follower(db: Database, tmp_path: Path) -> None:
    orphan = running(db, "a-dead-process", attempt=1, expires_in_s=-5)
    told: list[str] = []

    keeper(db, tmp_path, [], told).maintain()

    assert stored(db, orphan).status == InvocationStatus.QUEUED
    assert told == []
