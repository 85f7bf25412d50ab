"""Retries in the store (real SQLite and PostgreSQL): a run re-queued after an
infrastructure failure waits for its not-before time while other runs are claimed, and the
time of its first infrastructure failure stays on the row, so the node that takes it next
measures the same budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from executor.statuses import AttemptKind, InvocationStatus
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store import queries as query_store
from executor.store.claims import ClaimLimits, NodeClaim
from executor.store.db import Database
from executor.store.tables import Invocation, utcnow
from tests.store_rows import add_run

LIMITS = ClaimLimits(per_plugin=10, per_project=10)
FIRST = NodeClaim("first-node", frozenset({"runc"}), {}, "runc")
SECOND = NodeClaim("second-node", frozenset({"runc"}), {}, "runc")
REASON = "infrastructure: pulling r@sha256:0 at 127.0.0.1:5000 failed: connection refused"


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


def claim(db: Database, node: NodeClaim) -> list[Invocation]:
    with db.session() as session:  # only a registered node with a fresh heartbeat claims
        info = node_store.NodeInfo(node.node_id, node.node_id, "20.10", ["runc"], 10, 0)
        node_store.register(session, info)
    with db.session() as session:
        return claim_store.claim(session, node.node_id, 2, 30.0, LIMITS, node)


def another_run(db: Database, like: Invocation) -> str:
    """A second queued run of the same plugin, event and project, queued later."""
    with db.session() as session:
        run = Invocation(
            event_id=like.event_id,
            plugin_id=like.plugin_id,
            version_id=like.version_id,
            plugin_name=like.plugin_name,
            version_number=1,
            project_id=like.project_id,
            event_type="onSubmit",
            queued_at=utcnow() + timedelta(seconds=1),
        )
        session.add(run)
        session.flush()
        return run.id


def test_a_backing_off_run_waits_while_others_run_and_keeps_its_first_failure_time(
    db: Database,
) -> None:
    first = add_run(db)
    (held,) = claim(db, FIRST)
    with db.session() as session:
        failing = outcome_store.infrastructure_failing(session, held.id, held.lease_generation)
        assert failing is not None and failing.for_s == 0
        assert outcome_store.retry_later(
            session, held.id, held.lease_generation, REASON, 600.0, AttemptKind.INFRASTRUCTURE
        )
    later = another_run(db, first)

    # The run in backoff is not claimed; the one queued after it is.
    assert [run.id for run in claim(db, SECOND)] == [later]
    with db.session() as session:
        row = query_store.get_invocation(session, held.id)
        assert row.status == InvocationStatus.QUEUED and row.not_before is not None
        assert row.not_before > utcnow() + timedelta(seconds=500)
        assert row.infra_failing_since == failing.since
        assert [(a["attempt"], a["reason"], a["kind"]) for a in row.attempts] == [
            (1, REASON, "infrastructure")
        ]
        # Its backoff is over (as if the time had passed): the other node takes it.
        session.execute(update(Invocation).values(not_before=utcnow() - timedelta(seconds=1)))

    (again,) = claim(db, SECOND)
    assert (again.id, again.attempt, again.not_before) == (held.id, 2, None)
    with db.session() as session:
        assert (
            outcome_store.infrastructure_failing(session, held.id, held.lease_generation) is None
        )  # the first node lost the run: it records nothing
        later_failure = outcome_store.infrastructure_failing(
            session, again.id, again.lease_generation
        )
    assert later_failure is not None
    assert later_failure.since == failing.since  # the budget runs from the first failure
    assert later_failure.now >= failing.now
