"""Fencing in the store (real SQLite and PostgreSQL): once a run's lease went to another
node, every write of the holder that lost it affects nothing, and nothing is finalised
twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from executor.engine import Engine
from executor.metrics import Metrics, QueueFigures
from executor.run.dispatcher import Dispatcher
from executor.run.log_writer import RunLogWriter
from executor.run.node import NodeMembership
from executor.run.output import OutputLine
from executor.statuses import InvocationStatus, NodeState
from executor.store import claims as claim_store
from executor.store import gateway as gateway_store
from executor.store import leases as lease_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store.claims import ClaimLimits, NodeClaim
from executor.store.clock import database_now, db_now
from executor.store.db import Database
from executor.store.leases import LEASE_EXPIRED
from executor.store.tables import (
    GatewayCall,
    Invocation,
    InvocationToken,
    LogRecord,
    Node,
    utcnow,
)
from tests.conftest import make_settings
from tests.store_rows import add_run

LIMITS = ClaimLimits(per_plugin=10, per_project=10)
LEASE_S = 30.0
OLD = NodeClaim("old-node", frozenset({"runc"}), {}, "runc")
NEW = NodeClaim("new-node", frozenset({"runc"}), {}, "runc")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def queued_run(db: Database) -> str:
    return add_run(db).id


def register(db: Database, node: NodeClaim) -> None:
    info = node_store.NodeInfo(node.node_id, f"{node.node_id}:1", "20.10", ["runc"], 4, 0)
    with db.session() as session:
        node_store.register(session, info)


def claim(db: Database, node: NodeClaim) -> Invocation:
    with db.session() as session:
        (held,) = claim_store.claim(session, node.node_id, 1, LEASE_S, LIMITS, node)
        return held


def take_over(db: Database) -> list[str]:
    """What a live node does when the old one went silent past the lease TTL."""
    with db.session() as session:
        session.execute(
            update(Node)
            .where(Node.id == OLD.node_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=2 * LEASE_S))
        )
    with db.session() as session:
        lost = node_store.mark_lost(session, LEASE_S)
        for run in outcome_store.requeue_expired(session, max_attempts=5):
            gateway_store.revoke_for(session, run.id)
    return lost


def live_tokens(db: Database, run_id: str) -> set[str]:
    with db.session() as session:
        query = select(InvocationToken.token_sha256).where(
            InvocationToken.invocation_id == run_id, InvocationToken.revoked_at.is_(None)
        )
        return set(session.scalars(query))


def test_the_holder_that_lost_its_lease_writes_nothing(db: Database) -> None:
    run_id = queued_run(db)
    register(db, OLD)
    register(db, NEW)
    stale = claim(db, OLD)
    old_generation = stale.lease_generation
    writer = RunLogWriter(db, stale, None)
    writer.write([OutputLine("INFO", "before the takeover", "logger")])
    with db.session() as session:
        gateway_store.add_token(session, "a" * 64, run_id, "pr", utcnow(), old_generation)

    assert take_over(db) == [OLD.node_id]
    fresh = claim(db, NEW)
    assert (fresh.attempt, fresh.node_id) == (2, NEW.node_id)
    assert fresh.lease_generation > old_generation
    with db.session() as session:
        gateway_store.add_token(session, "b" * 64, run_id, "pr", utcnow(), fresh.lease_generation)

    # The old holder wakes up: each of its writes is refused.
    writer.write([OutputLine("INFO", "after the takeover", "logger")], {1: 999, 2: 999})
    assert writer.lost
    with db.session() as session:
        stale_token = gateway_store.find_token(session, "a" * 64)
        assert stale_token is not None
        assert not gateway_store.token_current(session, stale_token)
        assert not gateway_store.add_call(
            session, old_generation, invocation_id=run_id, method="GET", path="/x", status=200
        )
        gateway_store.revoke_for(session, run_id, old_generation)
        outcome_store.mark_handler_started(session, run_id, old_generation, utcnow())
        assert not outcome_store.begin_hand_off(
            session, run_id, old_generation, utcnow(), cold_start=True
        )
        assert not outcome_store.retry_later(session, run_id, old_generation, "late", 0.0)
        assert not outcome_store.finish(
            session, run_id, old_generation, status=InvocationStatus.FAILED, exit_code=1
        )
    assert live_tokens(db, run_id) == {"b" * 64}, "the old holder revoked the new token"

    with db.session() as session:
        assert outcome_store.finish(
            session, run_id, fresh.lease_generation, status=InvocationStatus.SUCCEEDED
        )
    with db.session() as session:  # a second result, even from the holder, is refused
        assert not outcome_store.finish(
            session, run_id, fresh.lease_generation, status=InvocationStatus.FAILED
        )
        row = session.get(Invocation, run_id)
        assert row is not None
        assert (row.status, row.attempt, row.node_id) == ("succeeded", 2, NEW.node_id)
        assert (row.stdout_read_bytes, row.handler_started_at) == (0, None)
        assert [a["reason"] for a in row.attempts] == [LEASE_EXPIRED]
        records = session.execute(select(LogRecord.content, LogRecord.node_id, LogRecord.attempt))
        assert records.all() == [("before the takeover", OLD.node_id, 1)]
        assert session.scalars(select(GatewayCall)).all() == []
        assert session.get(Node, OLD.node_id).state == NodeState.LOST  # type: ignore[union-attr]


def test_a_drained_node_claims_nothing_and_a_lost_one_beats_back_to_ready(
    db: Database,
) -> None:
    queued_run(db)
    register(db, OLD)
    with db.session() as session:
        assert node_store.drain(session, OLD.node_id).state == NodeState.DRAINING
    with db.session() as session:
        assert claim_store.claim(session, "old", 1, LEASE_S, LIMITS, OLD) == []
    register(db, NEW)
    take_over_state = take_over(db)
    assert take_over_state == [OLD.node_id]
    with db.session() as session:  # it knew it was draining: it stays so
        instance = f"{OLD.node_id}:1"
        assert node_store.heartbeat(session, OLD.node_id, instance, NodeState.DRAINING) == (
            NodeState.DRAINING
        )
        assert node_store.heartbeat(session, OLD.node_id, "another-process") is None
    with db.session() as session:
        assert claim_store.claim(session, "old", 1, LEASE_S, LIMITS, OLD) == []
    assert take_over(db) == [OLD.node_id]
    with db.session() as session:  # a ready node marked lost beats back to ready
        assert node_store.heartbeat(session, OLD.node_id, instance) == NodeState.READY
    assert claim(db, OLD).node_id == OLD.node_id


def set_heartbeat_age(db: Database, node: NodeClaim, age_s: float) -> None:
    """Make ``node``'s last heartbeat ``age_s`` old by the database's clock."""
    with db.session() as session:
        session.execute(
            update(Node).where(Node.id == node.node_id).values(heartbeat_at=db_now(-age_s))
        )


def test_a_node_whose_heartbeat_is_stale_claims_nothing_until_it_beats(db: Database) -> None:
    """The database came back after an outage longer than a lease: the node's heartbeat is
    stale, so any node may mark it lost now and re-run what it claims. It claims nothing
    until it has beaten; a claim with a fresh heartbeat renews it."""
    run_id = queued_run(db)
    register(db, OLD)
    set_heartbeat_age(db, OLD, LEASE_S + 1)
    with db.session() as session:
        stale_at = session.get(Node, OLD.node_id).heartbeat_at  # type: ignore[union-attr]
        assert claim_store.claim(session, OLD.node_id, 1, LEASE_S, LIMITS, OLD) == []
    with db.session() as session:
        run = session.get(Invocation, run_id)
        assert run is not None
        assert (run.status, run.attempt, run.lease_generation, run.node_id) == (
            InvocationStatus.QUEUED,
            0,
            0,
            None,
        )
        node = session.get(Node, OLD.node_id)
        assert node is not None
        assert (node.state, node.heartbeat_at) == (NodeState.READY, stale_at)
    with db.session() as session:  # an unregistered node claims nothing either
        assert claim_store.claim(session, NEW.node_id, 1, LEASE_S, LIMITS, NEW) == []

    with db.session() as session:
        assert node_store.heartbeat(session, OLD.node_id, f"{OLD.node_id}:1") == NodeState.READY
    set_heartbeat_age(db, OLD, LEASE_S - 5)  # fresh, if not by much
    with db.session() as session:
        before = database_now(session)
    held = claim(db, OLD)
    assert (held.id, held.attempt, held.node_id) == (run_id, 1, OLD.node_id)
    with db.session() as session:
        after = database_now(session)
        node = session.get(Node, OLD.node_id)
        assert node is not None
        assert before <= node.heartbeat_at <= after, "the claim did not renew the heartbeat"
        run = session.get(Invocation, run_id)
        assert run is not None and run.lease_expires_at is not None
        lease = timedelta(seconds=LEASE_S)
        assert before + lease <= run.lease_expires_at <= after + lease


def test_a_node_whose_clock_is_ahead_warns_once_shows_its_skew_and_marks_no_one_lost(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    register(db, OLD)
    register(db, NEW)
    node = NodeMembership(db, idle_engine(), make_settings(tmp_path, lease_s=LEASE_S), "new-node:1")
    node.claim, node.state = NEW, NodeState.READY
    monkeypatch.setattr(
        "executor.run.node.utcnow", lambda: datetime.now(UTC) + timedelta(minutes=10)
    )
    with caplog.at_level(logging.INFO, "executor.run.node"):
        with db.session() as session:
            before = database_now(session)
        assert node.beat() == [] and node.beat() == [], "a node ahead found its peer silent"
        with db.session() as session:
            after = database_now(session)
            row = session.get(Node, NEW.node_id)
            assert row is not None and row.clock_skew_s is not None
            assert before <= row.heartbeat_at <= after, "the heartbeat took the node's clock"
            assert abs(row.clock_skew_s - 600) < 5, row.clock_skew_s
        monkeypatch.setattr("executor.run.node.utcnow", utcnow)
        assert node.beat() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("node new-node: this host's clock is +") and (
        "off the database's (more than EXECUTOR_CLOCK_SKEW_WARN_S=5)" in warnings[0]
    )
    back = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(back) == 1 and "is back within" in back[0], back
    with db.session() as session:
        listed = {n.id: (n.state, n.clock_skew_s) for n in node_store.list_nodes(session)}
    assert listed[OLD.node_id] == (NodeState.READY, None)
    assert listed[NEW.node_id][0] == NodeState.READY
    skew = listed[NEW.node_id][1]
    assert skew is not None and abs(skew) < 5, skew


def idle_engine() -> Engine:
    """An engine client that never connects (an explicit API version): enough to beat."""
    return Engine(docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41"))


def test_a_node_whose_beat_failed_beats_again_at_its_next_poll(
    db: Database, tmp_path: Path
) -> None:
    """The store was down for longer than a lease: the beat that failed is tried again at
    the next poll once the store is back (not a third of a lease later), so the node's
    heartbeat is fresh again before it claims."""
    register(db, OLD)
    set_heartbeat_age(db, OLD, LEASE_S + 1)
    metrics = Metrics(lambda: QueueFigures({}, None, {}))
    dispatcher = Dispatcher(db, idle_engine(), make_settings(tmp_path, lease_s=LEASE_S), metrics)
    node = dispatcher.node
    node.instance, node.claim, node.state = f"{OLD.node_id}:1", OLD, NodeState.READY
    down = Database("postgresql+psycopg://executor:executor@127.0.0.1:1/none")  # refused
    try:
        node.db = dispatcher.leases.db = down
        with pytest.raises(OperationalError):
            dispatcher.leases.maintain()
        node.db = dispatcher.leases.db = db  # the store is back
        with db.session() as session:
            back_at = database_now(session)
        dispatcher.leases.maintain()
        with db.session() as session:
            row = session.get(Node, OLD.node_id)
            assert row is not None
            assert row.heartbeat_at >= back_at, "the node did not beat once the store was back"
    finally:
        down.dispose()
        dispatcher.jobs.shutdown()
        dispatcher.deliverer.close()


def test_a_node_paused_inside_a_transaction_cannot_keep_the_others_from_marking_it_lost(
    postgres_url: str,
) -> None:
    """SIGSTOP caught a node between its lease renewal and the commit: its row locks must
    not hold up the node that marks it lost (that one blocked for ever before)."""
    db = Database(postgres_url)
    db.migrate()
    register(db, OLD)
    register(db, NEW)
    run_id = queued_run(db)
    claim(db, OLD)
    paused_db = Database(postgres_url, idle_transaction_s=1.0)
    locked, resumed = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def paused_node() -> None:
        try:
            with paused_db.session() as session:
                lease_store.renew_leases(session, OLD.node_id, [run_id], LEASE_S)
                locked.set()
                resumed.wait()  # the process is stopped here, its transaction open
        except BaseException as exc:
            failures.append(exc)

    pause = threading.Thread(target=paused_node)
    pause.start()
    assert locked.wait(60)
    lost: list[str] = []
    taker = threading.Thread(target=lambda: lost.extend(take_over(db)), daemon=True)
    taker.start()
    taker.join(120)  # a generous deadline: before the fix it never returned
    resumed.set()
    pause.join(60)
    try:
        assert not taker.is_alive(), "marking the paused node lost is blocked by its locks"
        assert lost == [OLD.node_id]
        assert len(failures) == 1 and "idle-in-transaction" in str(failures[0]), failures
        with db.session() as session:
            run = session.get(Invocation, run_id)
            assert run is not None
            assert (run.status, run.attempts) == (InvocationStatus.QUEUED, [run.attempts[0]])
            assert run.attempts[0]["reason"] == LEASE_EXPIRED
            assert session.get(Node, OLD.node_id).state == NodeState.LOST  # type: ignore[union-attr]
    finally:
        paused_db.dispose()
        db.dispose()
