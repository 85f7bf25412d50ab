"""Placement in the claim (SQLite, no Docker): a node without a warm container of a
version leaves its fresh runs to a ready node holding one, for the grace only; the
per-plugin and per-project caps count the runs of every node."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from executor.statuses import InvocationStatus, NodeState
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store.db import Database
from executor.store.tables import Invocation, Node, utcnow
from tests.store_rows import add_run

LIMITS = claim_store.ClaimLimits(per_plugin=10, per_project=10)
COLD = claim_store.NodeClaim("cold", frozenset({"runc"}), {}, "runc")
GRACE_S = 60.0


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    return database


def _join(db: Database, node_id: str) -> None:
    info = node_store.NodeInfo(node_id, f"{node_id}-1", "20.10", ["runc"], 4, 2048)
    with db.session() as session:
        node_store.register(session, info)


def _queue(db: Database) -> tuple[str, str]:
    """One queued run of a fresh version: (run id, version id)."""
    run = add_run(db, project_id="proj")
    return run.id, run.version_id


def _claim(db: Database, node: claim_store.NodeClaim, grace_s: float) -> list[str]:
    with db.session() as session:
        claimed = claim_store.claim(session, node.node_id, 1, 30, LIMITS, node, grace_s)
        return [i.id for i in claimed]


@pytest.fixture
def warm_elsewhere(db: Database) -> tuple[str, str]:
    """A run whose version only node ``warm`` holds a warm container of."""
    _join(db, "cold")
    _join(db, "warm")
    run_id, version_id = _queue(db)
    with db.session() as session:
        node_store.publish_warm(session, "warm", "warm-1", {version_id: 1})
    return run_id, version_id


def test_a_fresh_run_is_left_to_the_node_holding_its_warm_container(
    db: Database, warm_elsewhere: tuple[str, str]
) -> None:
    run_id, _ = warm_elsewhere
    assert _claim(db, COLD, GRACE_S) == []
    warm = claim_store.NodeClaim("warm", frozenset({"runc"}), {}, "runc")
    assert _claim(db, warm, GRACE_S) == [run_id]


def test_after_the_grace_any_node_takes_it(db: Database, warm_elsewhere: tuple[str, str]) -> None:
    run_id, _ = warm_elsewhere
    assert _claim(db, COLD, GRACE_S) == []
    with db.session() as session:
        old = utcnow() - timedelta(seconds=GRACE_S + 1)
        session.execute(update(Invocation).where(Invocation.id == run_id).values(queued_at=old))
    assert _claim(db, COLD, GRACE_S) == [run_id]


@pytest.mark.parametrize("state", [NodeState.DRAINING, NodeState.LOST])
def test_a_warm_node_that_takes_no_runs_defers_nothing(
    db: Database, warm_elsewhere: tuple[str, str], state: NodeState
) -> None:
    run_id, _ = warm_elsewhere
    with db.session() as session:
        session.execute(update(Node).where(Node.id == "warm").values(state=state))
    assert _claim(db, COLD, GRACE_S) == [run_id]


def test_placement_off_takes_it_at_once(db: Database, warm_elsewhere: tuple[str, str]) -> None:
    run_id, _ = warm_elsewhere
    assert _claim(db, COLD, 0) == [run_id]


def test_a_restarted_node_publishes_no_warm_containers_until_its_pool_refills(
    db: Database, warm_elsewhere: tuple[str, str]
) -> None:
    run_id, _ = warm_elsewhere
    _join(db, "warm")  # the warm node restarted: its pool is empty
    assert _claim(db, COLD, GRACE_S) == [run_id]


@pytest.mark.parametrize(
    "limits",
    [
        claim_store.ClaimLimits(per_plugin=1, per_project=10),
        claim_store.ClaimLimits(per_plugin=10, per_project=1),
    ],
)
def test_a_node_with_free_slots_claims_nothing_while_other_nodes_run_the_cap(
    db: Database, limits: claim_store.ClaimLimits
) -> None:
    first = add_run(db, project_id="proj")
    with db.session() as session:  # a second run of the same plugin, version and project
        second = Invocation(
            event_id=first.event_id,
            plugin_id=first.plugin_id,
            version_id=first.version_id,
            plugin_name=first.plugin_name,
            version_number=1,
            project_id="proj",
            event_type="onSubmit",
        )
        session.add(second)
    other = claim_store.NodeClaim("other", frozenset({"runc"}), {}, "runc")
    for node in (COLD, other):
        _join(db, node.node_id)
    with db.session() as session:
        claimed = claim_store.claim(session, "cold-1", 5, 30, limits, COLD)
        assert [i.id for i in claimed] == [first.id]
    with db.session() as session:
        assert claim_store.claim(session, "other-1", 5, 30, limits, other) == []
        outcome_store.finish(
            session, first.id, claimed[0].lease_generation, status=InvocationStatus.SUCCEEDED
        )
    with db.session() as session:
        claimed = claim_store.claim(session, "other-1", 5, 30, limits, other)
        assert [(i.id, i.node_id) for i in claimed] == [(second.id, "other")]
