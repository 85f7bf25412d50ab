"""Events posted at the same time share one write and one commit on PostgreSQL, each post
returning only once its own rows are committed; a batch holding a bad event is written
again event by event, so only that event's post fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import event, select

from executor.store import ingest as ingest_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation
from tests.conftest import make_settings, start_server, stop_server

DEADLINE_S = 120


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    database.migrate()
    yield database
    database.dispose()


def rows(event_id: str, *, runs: int = 0) -> ingest_store.EventRows:
    new = ingest_store.new_event(
        event_id=event_id, tenant_id="default", type="onSubmit", project_id="p", asset_id="a"
    )
    version = ingest_store.RunnableVersion("v1", 1, "ACTIVE", None, ["on_submit"], "sha256:x")
    activation = ingest_store.ProjectActivation("pl", "plugin", "v1", None, 0, None, [version])
    return ingest_store.event_rows(new, {"n": event_id}, None, [(activation, version)] * runs)


def inserts(db: Database) -> tuple[list[str], Any]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        if "INSERT" in str(args[2]):
            seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", record)
    return seen, record


@contextmanager
def events_table_locked(db: Database) -> Iterator[None]:
    """Inserts into events wait while this holds its lock (a real writer, stalled)."""
    with db.engine.connect() as blocker:
        blocker.exec_driver_sql("LOCK TABLE events IN SHARE MODE")
        yield
        blocker.rollback()


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "the writer never got there"
        time.sleep(0.01)


def stored(db: Database) -> dict[str, int]:
    """Stored event ids, each with its number of invocations."""
    with db.session() as session:
        ids = session.scalars(select(Event.id)).all()
        owners = session.scalars(select(Invocation.event_id)).all()
    return {event_id: owners.count(event_id) for event_id in ids}


def test_events_queued_behind_a_write_share_the_next_one(db: Database) -> None:
    writer = ingest_store.EventWriter(db)
    seen, record = inserts(db)
    committed_when_returned: dict[str, bool] = {}

    def post(event_id: str) -> None:
        writer.write(rows(event_id, runs=2))
        committed_when_returned[event_id] = event_id in stored(db)

    with ThreadPoolExecutor(6) as pool:
        with events_table_locked(db):
            first = pool.submit(post, "first")
            wait_until(lambda: len(seen) == 1)  # the first write is in, waiting on the lock
            later = [pool.submit(post, f"later-{i}") for i in range(5)]
            wait_until(lambda: len(writer._queued) == 5)
            assert not first.done() and not any(f.done() for f in later)
        for future in (first, *later):
            future.result(timeout=DEADLINE_S)
    event.remove(db.engine, "before_cursor_execute", record)
    # Two statements for six events with their twelve invocations: the first alone, then
    # the five that queued meanwhile together.
    assert len(seen) == 2, seen
    assert all(s.startswith("WITH event AS") for s in seen), seen
    assert stored(db) == {"first": 2, **{f"later-{i}": 2 for i in range(5)}}
    assert all(committed_when_returned.values()) and len(committed_when_returned) == 6


def test_a_bad_event_in_a_batch_fails_only_its_own_post(db: Database) -> None:
    writer = ingest_store.EventWriter(db)
    writer.write(rows("taken"))
    seen, record = inserts(db)
    with ThreadPoolExecutor(4) as pool:
        with events_table_locked(db):
            first = pool.submit(writer.write, rows("first"))
            wait_until(lambda: len(seen) == 1)
            batch: list[Future[None]] = [
                pool.submit(writer.write, rows(event_id, runs=1))
                for event_id in ("good-1", "taken", "good-2")
            ]
            wait_until(lambda: len(writer._queued) == 3)
        first.result(timeout=DEADLINE_S)
        good_1, clash, good_2 = batch
        good_1.result(timeout=DEADLINE_S)
        good_2.result(timeout=DEADLINE_S)
        with pytest.raises(ingest_store.EventIdTaken, match="taken"):
            clash.result(timeout=DEADLINE_S)
    event.remove(db.engine, "before_cursor_execute", record)
    # The batch of three failed as a whole (nothing of it stored), then each went alone.
    assert len(seen) == 1 + 1 + 3, seen
    assert stored(db) == {"taken": 0, "first": 0, "good-1": 1, "good-2": 1}


def test_one_id_posted_twice_at_once_answers_the_second_with_the_first_post(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> None:
    """The second post's check finds no stored event (the first is not committed yet), so
    its write clashes on the id: it answers 200 with the first post's invocations."""
    entry = start_server(
        make_settings(tmp_path, database_url=postgres_url, dispatch=False), docker_client
    )
    server = entry[0]
    try:
        server.push("counter", name="twice")
        server.activate("twice", "p")
        db, writer = server.service.db, server.service.event_writer
        body = {"id": "once", "type": "onSubmit", "project_id": "p", "asset_id": "a", "label": {}}
        seen, record = inserts(db)
        with ThreadPoolExecutor(2) as pool, events_table_locked(db):
            first = pool.submit(server.api.post, "/v1/events", json=body)
            wait_until(lambda: len(seen) == 1)
            second = pool.submit(server.api.post, "/v1/events", json=body)
            wait_until(lambda: len(writer._queued) == 1)
        event.remove(db.engine, "before_cursor_execute", record)
        answers = sorted(
            (f.result(timeout=DEADLINE_S) for f in (first, second)), key=lambda r: r.status_code
        )
        assert [r.status_code for r in answers] == [200, 202], [r.text for r in answers]
        assert answers[0].json() == answers[1].json()
        assert stored(db) == {"once": 1}
    finally:
        stop_server(*entry)
