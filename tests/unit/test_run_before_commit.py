"""A run the dispatcher starts while its claim commits (PostgreSQL's dispatchers do) and
that cannot start records its end only once the claim's transaction ended, here on the
in-memory ``FakeEngine`` and a real SQLite store. (A run that starts hands off with a
statement that waits for the claim on the run's row lock: ``tests/integration/
test_claim_race.py: test_a_hand_off_sent_before_its_claims_commit_waits_for_it``.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.engine.fake import FakeEngine, scripted
from executor.metrics import Metrics, QueueFigures
from executor.run.dispatcher import Dispatcher
from executor.statuses import InvocationStatus
from executor.store.db import Database
from executor.store.queries import RunInputs
from executor.store.tables import Invocation, utcnow
from tests.fake_world import add_plugin_run, fake_settings

# What the run's row and the engine held when the run waited for its claim's commit.
Seen = tuple[InvocationStatus | str, bool, int]


class ClaimEnded(threading.Event):
    """Set already (the claim committed); notes the row and the engine at each wait."""

    def __init__(self, db: Database, engine: FakeEngine, run_id: str) -> None:
        super().__init__()
        self.db, self.engine, self.run_id = db, engine, run_id
        self.seen: list[Seen] = []
        self.set()

    def wait(self, timeout: float | None = None) -> bool:
        with self.db.session() as session:
            row = session.get(Invocation, self.run_id)
            assert row is not None
            self.seen.append(
                (row.status, row.deadline_at is not None, len(self.engine.containers.held))
            )
        return super().wait(timeout)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Database, FakeEngine, Dispatcher]]:
    settings = fake_settings(tmp_path)
    db = Database(settings.resolved_database_url)
    db.migrate()
    engine = FakeEngine()
    engine.identify(db.store_id(), None)
    engine.images.add("early:1", scripted("hello"))
    # Not started: the test hands the run to its runner as a claim would.
    dispatcher = Dispatcher(db, engine, settings, Metrics(lambda: QueueFigures({}, None, {})))
    yield db, engine, dispatcher
    db.dispose()


def claimed_run(db: Database, dispatcher: Dispatcher) -> Invocation:
    """A queued run taken under generation 1, as a claim leaves it."""
    run_id = add_plugin_run(db, "early:1")
    with db.session() as session:
        run = session.get(Invocation, run_id)
        assert run is not None
        run.status, run.lease_owner, run.lease_generation = "running", dispatcher.owner, 1
        run.attempt, run.started_at = 1, utcnow()
    with db.session() as session:
        run = session.get(Invocation, run_id)
        assert run is not None
        session.expunge(run)
        return run


def test_a_run_whose_container_fails_is_ended_only_after_the_commit(
    world: tuple[Database, FakeEngine, Dispatcher],
) -> None:
    db, engine, dispatcher = world
    run = claimed_run(db, dispatcher)
    engine.fail("containers.create", times=5)
    ended = ClaimEnded(db, engine, run.id)
    dispatcher.runner.run(run, None, ended)
    assert ended.seen == [("running", False, 0)]  # waited before its end was written
    with db.session() as session:
        done = session.get(Invocation, run.id)
        assert done is not None and done.status != InvocationStatus.RUNNING


def test_a_run_whose_event_is_gone_is_ended_only_after_the_commit(
    world: tuple[Database, FakeEngine, Dispatcher],
) -> None:
    db, engine, dispatcher = world
    run = claimed_run(db, dispatcher)
    ended = ClaimEnded(db, engine, run.id)
    dispatcher.runner.run(run, RunInputs(event=None, version=None, plugin=None), ended)
    assert ended.seen == [("running", False, 0)]  # waited before its end was written
    with db.session() as session:
        done = session.get(Invocation, run.id)
        assert done is not None and done.status == InvocationStatus.CRASHED
        assert done.error == "the plugin version or event is gone"
