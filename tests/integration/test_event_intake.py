"""Events posted at the same time share one write and one commit, each post answered only
once its own rows are committed; a batch holding a bad event is written again event by
event, so only that event's post fails."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from executor.errors import Conflict
from executor.schemas.events import EventIn
from executor.service.events import EventIntake, Ingested
from executor.statuses import BuildStatus
from executor.store import ingest as ingest_store
from executor.store.announce import worth_a_look
from executor.store.claim_selection import NodeClaim
from executor.store.db import Database
from executor.store.listen import QUEUE_CHANNEL, StoreListener
from executor.store.tables import Activation, Event, Invocation, Plugin, PluginVersion, Project
from executor.tenancy.access import operator_caller
from tests.conftest import make_settings, start_server, stop_server

DEADLINE_S = 120
PROJECT = "p"


@pytest.fixture
def db(postgres_db: Database) -> Database:
    return postgres_db


@pytest.fixture
def intake(db: Database) -> Iterator[EventIntake]:
    """An intake on a store where two plugins run on every onSubmit of ``PROJECT``."""
    with db.session() as session:
        session.add(Project(id=PROJECT))
        for name in ("one", "two"):
            plugin = Plugin(name=name)
            session.add(plugin)
            session.flush()
            version = PluginVersion(
                plugin_id=plugin.id,
                number=1,
                status=BuildStatus.ACTIVE.value,
                handlers=["onSubmit"],
                source_sha256="x",
                source=b"",
                image_id="sha256:x",
            )
            session.add(version)
            session.flush()
            plugin.current_version_id = version.id
            session.add(Activation(plugin_id=plugin.id, project_id=PROJECT))
    stored: list[Ingested] = []
    running = EventIntake(db, stored.append)
    yield running
    running.stop()


def post(intake: EventIntake, event_id: str) -> Any:
    """Submit an onSubmit event of ``PROJECT`` with this id: its answer's future."""
    body = EventIn(id=event_id, type="onSubmit", project_id=PROJECT, asset_id="a", label={})
    return intake.submit(operator_caller("default"), body)


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
        assert time.monotonic() < deadline, "the intake never got there"
        time.sleep(0.01)


def stored(db: Database) -> dict[str, int]:
    """Stored event ids, each with its number of invocations."""
    with db.session() as session:
        ids = session.scalars(select(Event.id)).all()
        owners = session.scalars(select(Invocation.event_id)).all()
    return {event_id: owners.count(event_id) for event_id in ids}


def test_events_queued_behind_a_write_share_the_next_one(db: Database, intake: EventIntake) -> None:
    seen, record = inserts(db)
    with events_table_locked(db):
        first = post(intake, "first")
        wait_until(lambda: len(seen) == 1)  # the first write is in, waiting on the lock
        later = [post(intake, f"later-{i}") for i in range(5)]
        wait_until(lambda: intake.queued == 5)
        assert not first.done() and not any(f.done() for f in later)
    answers = [f.result(timeout=DEADLINE_S) for f in (first, *later)]
    committed = stored(db)
    event.remove(db.engine, "before_cursor_execute", record)
    # Two writes for six events with their twelve invocations, the first alone, then the
    # five that queued meanwhile together: each one statement inserting into both tables.
    tables = [re.findall(r"INSERT INTO (\w+)", statement) for statement in seen]
    assert tables == [["events", "invocations"]] * 2, seen
    assert committed == {"first": 2, **{f"later-{i}": 2 for i in range(5)}}
    assert [(a.event_id, len(a.invocation_ids), a.created) for a in answers] == [
        (event_id, 2, True) for event_id in ("first", *(f"later-{i}" for i in range(5)))
    ]


def test_a_connection_the_store_drops_mid_write_fails_only_that_write(
    db: Database, intake: EventIntake
) -> None:
    """PostgreSQL ends the intake's session while a write waits: that post is answered
    with the error (not left waiting), and the posts queued behind it are stored on a new
    connection."""
    seen, record = inserts(db)
    with events_table_locked(db):
        first = post(intake, "first")
        wait_until(lambda: len(seen) == 1)
        later = [post(intake, f"later-{i}") for i in range(3)]
        wait_until(lambda: intake.queued == 3)
        with db.autocommit_connection() as admin:
            # This test's database only: other tests (other processes) insert events too.
            ended = admin.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE '%%INSERT INTO events%%' "
                "AND pid <> pg_backend_pid()"
            ).scalars()
            assert list(ended) == [True]
        with pytest.raises(OperationalError, match="terminating connection"):
            first.result(timeout=DEADLINE_S)
    event.remove(db.engine, "before_cursor_execute", record)
    assert [f.result(timeout=DEADLINE_S).created for f in later] == [True] * 3
    assert stored(db) == {f"later-{i}": 2 for i in range(3)}


def rows(event_id: str) -> ingest_store.EventRows:
    new = ingest_store.new_event(
        event_id=event_id, tenant_id="default", type="onSubmit", project_id="q", asset_id="a"
    )
    return ingest_store.event_rows(new, {"n": event_id}, None, [])


def test_a_bad_event_in_a_batch_fails_only_itself(db: Database) -> None:
    with db.autocommit_connection() as connection:
        assert ingest_store.write_events(db, connection, [rows("taken")]) == [None]
        seen, record = inserts(db)
        batch = [rows("good-1"), rows("taken"), rows("good-2")]
        outcomes = ingest_store.write_events(db, connection, batch)
    event.remove(db.engine, "before_cursor_execute", record)
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "EventIdTaken", "NoneType"]
    assert str(outcomes[1]) == "taken"
    # The batch of three failed as a whole (nothing of it stored), then each went alone.
    assert len(seen) == 1 + 3, seen
    assert stored(db) == {"taken": 0, "good-1": 0, "good-2": 0}


def test_an_id_taken_in_a_batch_by_another_tenant_fails_only_that_post(
    db: Database, intake: EventIntake
) -> None:
    """Two tenants post the same id at the same time: the first write wins, the other post
    alone fails (409), and the events around it are stored."""
    with events_table_locked(db):
        seen, record = inserts(db)
        blocker = post(intake, "blocker")
        wait_until(lambda: len(seen) == 1)
        mine = post(intake, "shared")
        other = intake.submit(
            operator_caller("acme"),
            EventIn(id="shared", type="custom", project_id="elsewhere", payload={}),
        )
        after = post(intake, "after")
        wait_until(lambda: intake.queued == 3)
    event.remove(db.engine, "before_cursor_execute", record)
    for future in (blocker, mine, after):
        assert future.result(timeout=DEADLINE_S).created
    with pytest.raises(Conflict, match="event id 'shared' is taken: send another"):
        other.result(timeout=DEADLINE_S)
    assert stored(db) == {"blocker": 2, "shared": 2, "after": 2}


def test_one_id_posted_twice_at_once_answers_the_second_with_the_first_post(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> None:
    """Both posts are read before either is written (they share a batch), so the second's
    write clashes on the id: it answers 200 with the first post's invocations."""
    entry = start_server(
        make_settings(tmp_path, database_url=postgres_url, dispatch=False), docker_client
    )
    server = entry[0]
    try:
        server.push("counter", name="twice")
        server.activate("twice", "p")
        db, intake = server.service.db, server.service.intake
        body = {"id": "once", "type": "onSubmit", "project_id": "p", "asset_id": "a", "label": {}}
        seen, record = inserts(db)
        with ThreadPoolExecutor(3) as pool, events_table_locked(db):
            blocker = pool.submit(server.post_event, **{**body, "id": "blocker"})
            wait_until(lambda: len(seen) == 1)
            first = pool.submit(server.api.post, "/v1/events", json=body)
            wait_until(lambda: intake.queued == 1)
            second = pool.submit(server.api.post, "/v1/events", json=body)
            wait_until(lambda: intake.queued == 2)
        event.remove(db.engine, "before_cursor_execute", record)
        blocker.result(timeout=DEADLINE_S)
        answers = [f.result(timeout=DEADLINE_S) for f in (first, second)]
        assert [r.status_code for r in answers] == [202, 200], [r.text for r in answers]
        assert answers[0].json() == answers[1].json()
        assert stored(db) == {"blocker": 1, "once": 1}
    finally:
        stop_server(*entry)


def test_the_queue_announcement_names_where_the_queued_runs_may_go(
    db: Database, intake: EventIntake, postgres_url: str
) -> None:
    """The write that queues an event's runs announces their placements at its commit: a
    worker that may run none of them does not look at the queue."""
    with db.session() as session:
        one, two = session.scalars(select(Activation).order_by(Activation.created_at)).all()
        one.node_selector = {"zone": "a"}
        two.runtime = "runsc"
    heard: queue.Queue[str | None] = queue.Queue()
    listener = StoreListener(postgres_url, {QUEUE_CHANNEL: heard.put})
    listener.start()
    try:
        assert heard.get(timeout=DEADLINE_S) is None  # connected
        assert post(intake, "placed").result(timeout=DEADLINE_S).created
        payload = heard.get(timeout=DEADLINE_S)
    finally:
        listener.stop()
    assert payload == '[["runsc",null],[null,{"zone":"a"}]]'
    zone_a = NodeClaim("a", frozenset({"runc"}), {"zone": "a"}, "runc")
    zone_c = NodeClaim("c", frozenset({"runc"}), {"zone": "c"}, "runc")
    gvisor_c = NodeClaim("g", frozenset({"runc", "runsc"}), {"zone": "c"}, "runc")
    assert [worth_a_look(payload, n) for n in (zone_a, zone_c, gvisor_c)] == [True, False, True]
