"""Claims without a global lock (issue 25), on PostgreSQL: claimers of different plugins
do not wait on each other, and claimers racing for a limit of 1 never hold 2 runs of it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from executor.statuses import InvocationStatus
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store.claims import ClaimLimits, NodeClaim
from executor.store.db import Database
from executor.store.tables import (
    Activation,
    Event,
    Invocation,
    InvocationToken,
    Node,
    Plugin,
    PluginVersion,
    Tenant,
)

CLAIMERS = 8
ROUNDS = 12
RUNS_PER_ROUND = 2 * CLAIMERS
LEASE_S = 30.0
NODES = [NodeClaim(f"racer-{n}", frozenset({"runc"}), {}, "runc") for n in range(CLAIMERS)]


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url, pool_size=CLAIMERS + 2)
    database.migrate()
    with database.session() as session:
        for node in NODES:
            info = node_store.NodeInfo(node.node_id, "me", "20.10", ["runc"], 8, 0)
            node_store.register(session, info)
    yield database
    database.dispose()


def queue(db: Database, plugin: str, project: str, tenant: str, count: int) -> None:
    """``count`` queued runs of plugin ``plugin`` (made if new) of ``tenant`` on ``project``."""
    with db.session() as session:
        row = session.scalar(select(Plugin).where(Plugin.name == plugin))
        if row is None:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant))
                session.flush()
            row = Plugin(name=plugin, tenant_id=tenant)
            session.add(row)
            session.flush()
            session.add(PluginVersion(plugin_id=row.id, number=1, source_sha256="x", source=b""))
            session.flush()
        version = session.scalars(
            select(PluginVersion).where(PluginVersion.plugin_id == row.id)
        ).one()
        for _ in range(count):
            event = Event(type="onSubmit", project_id=project, tenant_id=tenant)
            session.add(event)
            session.flush()
            session.add(
                Invocation(
                    event_id=event.id,
                    tenant_id=tenant,
                    plugin_id=row.id,
                    version_id=version.id,
                    plugin_name=plugin,
                    version_number=1,
                    project_id=project,
                    event_type="onSubmit",
                )
            )


def race(db: Database, limits: ClaimLimits) -> list[str]:
    """Every claimer claims at once (each up to 3 runs, on its own node); the ids taken."""
    start = threading.Barrier(CLAIMERS)
    taken: list[str] = []
    errors: list[BaseException] = []

    def claimer(node: NodeClaim) -> None:
        try:
            with db.session() as session:
                start.wait()
                claimed = claim_store.claim(session, node.node_id, 3, LEASE_S, limits, node)
                taken.extend(i.id for i in claimed)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=claimer, args=(node,)) for node in NODES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return taken


def running(db: Database, column: str) -> dict[str, int]:
    """Running invocations by ``column`` (plugin_name, project_id, tenant_id), as recorded."""
    key = getattr(Invocation, column)
    with db.session() as session:
        rows = session.execute(
            select(key, func.count())
            .where(Invocation.status == InvocationStatus.RUNNING)
            .group_by(key)
        )
        return {str(k): int(n) for k, n in rows.all()}


def finish_running(db: Database) -> None:
    with db.session() as session:
        held = session.scalars(
            select(Invocation).where(Invocation.status == InvocationStatus.RUNNING)
        ).all()
        for run in held:
            outcome_store.finish(
                session, run.id, run.lease_generation, status=InvocationStatus.SUCCEEDED
            )


# Each case: the limit of 1, how its runs are spread, and the column that must never
# count 2 running.
CASES = {
    "plugin": (ClaimLimits(per_plugin=1, per_project=100), "plugin_name"),
    "project": (ClaimLimits(per_plugin=100, per_project=1), "project_id"),
    "tenant": (ClaimLimits(per_plugin=100, per_project=100, per_tenant=1), "tenant_id"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_claimers_racing_for_a_limit_of_one_never_hold_two(db: Database, case: str) -> None:
    limits, column = CASES[case]
    for n in range(RUNS_PER_ROUND):
        # One plugin for "plugin"; one project for "project"; one tenant for "tenant";
        # spread over the other keys so only the limit under test can stop a claim.
        plugin = "p" if case == "plugin" else f"p{n}"
        project = "pr" if case == "project" else f"pr{n}"
        queue(db, plugin, project, "t", ROUNDS)
    for round_ in range(ROUNDS):
        taken = race(db, limits)
        counts = running(db, column)
        assert len(taken) == 1, f"round {round_}: {len(taken)} runs taken"
        assert list(counts.values()) == [1], f"round {round_}: running {counts}"
        finish_running(db)
    assert running(db, column) == {}


def test_a_claim_does_not_wait_on_an_open_claim_of_another_plugin(db: Database) -> None:
    """A claimer holding its claim's transaction open (a paused process) holds up claims
    of the same limited keys only: a claim of another plugin, project and tenant goes
    through at once (it would wait for ever on one global lock; the lock timeout only
    turns such a wait into an error)."""
    limits = ClaimLimits(per_plugin=1, per_project=1)
    # As many of the held plugin's runs as the open claim looks at (and locks), first.
    queue(db, "held", "pr-held", "a", claim_store.locked_window(1))
    queue(db, "free", "pr-free", "b", 1)
    with db.session() as open_claim:
        (held,) = claim_store.claim(open_claim, "racer-0", 1, LEASE_S, limits, NODES[0])
        assert held.plugin_name == "held"
        with db.session() as session:
            session.execute(text("SET LOCAL lock_timeout = '30s'"))
            other = claim_store.claim(session, "racer-1", 1, LEASE_S, limits, NODES[1])
            assert [i.plugin_name for i in other] == ["free"]


def claim_reading_inputs(session: Session, *args: Any) -> list[Invocation]:
    """``claim_with_inputs``' runs, each with its inputs read."""
    taken, inputs = claim_store.claim_with_inputs(session, *args)
    assert [inputs[run.id].event.id for run in taken] == [run.event_id for run in taken]  # type: ignore[union-attr]
    return taken


@pytest.mark.parametrize("claim", [claim_store.claim, claim_reading_inputs])
def test_a_claim_counted_before_another_committed_takes_only_what_still_fits(
    db: Database, claim: Callable[..., list[Invocation]]
) -> None:
    """The first count of a claim may be out of date by the time it takes its runs: the
    update that takes them checks the limit keys again under their locks (``claim_fits``)
    and, when they no longer all fit, the claim takes only those that still do."""
    limits = ClaimLimits(per_plugin=1, per_project=100)
    # More of p's runs than the open claim locks, so the second claim sees one; then q's.
    queue(db, "p", "pr-p", "t", claim_store.locked_window(1) + 1)
    queue(db, "q", "pr-q", "t", 1)
    taken: list[str] = []
    errors: list[BaseException] = []
    with db.session() as open_claim:
        (first,) = claim_store.claim(open_claim, "racer-0", 1, LEASE_S, limits, NODES[0])
        assert first.plugin_name == "p"

        def second() -> None:
            try:
                with db.session() as session:
                    claimed = claim(session, "racer-1", 2, LEASE_S, limits, NODES[1])
                    taken.extend(i.plugin_name for i in claimed)
            except BaseException as error:  # reported by the test, not lost in the thread
                errors.append(error)

        thread = threading.Thread(target=second)
        thread.start()
        # The second claim counted no p running, picked one of p and q's, and now waits
        # for p's key, which the open claim holds until it commits.
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        with db.autocommit_connection() as probe:  # each read a new look at pg_locks
            while not probe.execute(text(waiting)).scalar() and thread.is_alive():
                pass
    thread.join()
    assert not errors, errors
    assert taken == ["q"]
    assert running(db, "plugin_name") == {"p": 1, "q": 1}


def statements(db: Database) -> list[str]:
    """The statements the store's engine executes from now on (first words of each)."""
    seen: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]))

    return seen


def test_a_claim_is_three_statements_and_an_idle_one_a_single_one_that_writes_nothing(
    db: Database,
) -> None:
    limits = ClaimLimits(per_plugin=10, per_project=10)
    node = NODES[0]
    with db.session() as session:
        beat = session.scalar(select(Node.heartbeat_at).where(Node.id == node.node_id))
    seen = statements(db)
    with db.session() as session:
        assert claim_store.claim(session, node.node_id, 2, LEASE_S, limits, node) == []
    assert seen == ["WITH beat AS"]  # nothing due: no heartbeat renewed, no row locked
    with db.session() as session:
        assert session.scalar(select(Node.heartbeat_at).where(Node.id == node.node_id)) == beat
    queue(db, "p", "pr", "t", 3)
    seen.clear()
    with db.session() as session:
        taken = claim_store.claim(session, node.node_id, 2, LEASE_S, limits, node)
    assert len(taken) == 2
    # The heartbeat with the room, the candidates, and the update that checks the limit
    # keys under their locks and takes the runs.
    assert seen == [
        "WITH beat AS",
        "SELECT invocations.id, invocations.plugin_id,",
        "UPDATE invocations SET",
    ]
    with db.session() as session:
        renewed = session.scalar(select(Node.heartbeat_at).where(Node.id == node.node_id))
    assert renewed is not None and beat is not None and renewed > beat


def activate(db: Database, plugin: str, project: str, **placement: Any) -> None:
    """Give ``plugin``'s activation on ``project`` its placement (runtime, node_selector)."""
    with db.session() as session:
        plugin_id = session.scalar(select(Plugin.id).where(Plugin.name == plugin))
        session.add(Activation(plugin_id=plugin_id, project_id=project, **placement))


def register(db: Database, node: NodeClaim, warm: dict[str, int] | None = None) -> None:
    with db.session() as session:
        info = node_store.NodeInfo(node.node_id, "me", "20.10", sorted(node.runtimes), 8, 0)
        node_store.register(session, info)
        node_store.publish_warm(session, node.node_id, "me", warm or {})


def version_of(db: Database, plugin: str) -> str:
    with db.session() as session:
        return str(
            session.scalar(select(PluginVersion.id).join(Plugin).where(Plugin.name == plugin))
        )


A = NodeClaim("node-a", frozenset({"runc", "runsc"}), {"zone": "a"}, "runc")
B = NodeClaim("node-b", frozenset({"runc"}), {"zone": "b"}, "runc")
PLACED: dict[str, dict[str, Any]] = {
    "a node selector": {"node_selector": {"zone": "a"}},
    "a runtime only one node has": {"runtime": "runsc"},
    "a warm container on the other node": {},
}


@pytest.mark.parametrize("case", list(PLACED))
def test_a_claim_open_on_the_wrong_node_does_not_hide_a_run_from_its_node(
    db: Database, case: str
) -> None:
    """Both nodes are woken by the same notification. Node b, which does not take the run
    (another node's labels or runtime, or a run left to the node that holds its version
    warm), holds its claim open; node a, the run's node, still takes it at once: b never
    locked it. (When b locked it, a skipped it, and took it only at its next poll.)"""
    limits = ClaimLimits(per_plugin=10, per_project=10)
    queue(db, "placed", "pr-placed", "t", 1)
    activate(db, "placed", "pr-placed", **PLACED[case])
    warm = {version_of(db, "placed"): 1} if case.startswith("a warm") else {}
    register(db, A, warm)
    register(db, B)
    with db.session() as open_claim:
        left = claim_store.claim(open_claim, B.node_id, 2, LEASE_S, limits, B, grace_s=60)
        assert left == []
        with db.session() as session:
            taken = claim_store.claim(session, A.node_id, 2, LEASE_S, limits, A, grace_s=60)
            assert [i.plugin_name for i in taken] == ["placed"]
    assert running(db, "node_id") == {A.node_id: 1}


@pytest.mark.parametrize("case", ["a node selector", "a runtime only one node has"])
def test_a_claim_with_nothing_the_node_may_run_writes_nothing(db: Database, case: str) -> None:
    """Every node hears every queued run's notification. Node b, which may run none of the
    queue (another node's labels or runtime), opens its claim and stops there, as an idle
    poll does: one statement, no heartbeat renewed (no write for the commit to flush), no
    row locked. Node a then takes the run."""
    limits = ClaimLimits(per_plugin=10, per_project=10)
    queue(db, "placed", "pr-placed", "t", 1)
    activate(db, "placed", "pr-placed", **PLACED[case])
    register(db, A)
    register(db, B)
    with db.session() as session:
        beat = session.scalar(select(Node.heartbeat_at).where(Node.id == B.node_id))
    seen = statements(db)
    with db.session() as session:
        assert claim_store.claim(session, B.node_id, 2, LEASE_S, limits, B) == []
    assert seen == ["WITH beat AS"]
    with db.session() as session:
        assert session.scalar(select(Node.heartbeat_at).where(Node.id == B.node_id)) == beat
    assert running(db, "node_id") == {}
    with db.session() as session:
        taken = claim_store.claim(session, A.node_id, 2, LEASE_S, limits, A)
    assert [i.plugin_name for i in taken] == ["placed"]
    assert running(db, "node_id") == {A.node_id: 1}


def test_a_claim_reads_its_runs_inputs_in_the_update_that_takes_them(db: Database) -> None:
    """The dispatcher's claim (``claim_with_inputs``) is three statements too: the update
    that takes the runs returns what each runs (event, version, plugin, last log record,
    a webhook's receiver), so a start reads nothing before its hand-off; with warm-aware
    placement on (the default), the ready nodes' warm sets come with the heartbeat."""
    limits = ClaimLimits(per_plugin=10, per_project=10)
    node = NODES[0]
    queue(db, "p", "pr", "t", 3)
    seen = statements(db)
    with db.session() as session:
        taken, inputs = claim_store.claim_with_inputs(
            session, node.node_id, 2, LEASE_S, limits, node, grace_s=2.0
        )
    assert seen == [
        "WITH beat AS",
        "SELECT invocations.id, invocations.plugin_id,",
        "WITH taken AS",
    ]
    assert len(taken) == 2 and sorted(inputs) == sorted(run.id for run in taken)
    for run in taken:
        found = inputs[run.id]
        assert run.status == InvocationStatus.RUNNING and run.node_id == node.node_id
        assert found.event is not None and found.event.id == run.event_id
        assert found.version is not None and found.version.id == run.version_id
        assert found.plugin is not None and found.plugin.id == run.plugin_id
        assert (found.runtime, found.last_seq, found.webhook) == (None, 0, None)
    assert running(db, "plugin_name") == {"p": 2}


def prepared_plan(
    db: Database, session_claim: Callable[[Session], object], sent_as: str, *, generic: bool
) -> dict[str, Any]:
    """The executed plan (EXPLAIN ANALYZE) of the statement starting with ``sent_as`` that
    ``session_claim`` sends, with the parameters it sent: the statement prepared, as
    ``driver_sql`` runs it, and planned as the claim has it planned: ``generic``
    (``claim_statements.PLAN_ONCE``), or as PostgreSQL chooses (for its first five
    executions a plan for their parameters, then maybe a generic one; a generic plan once
    scanned and sorted the whole queue for the candidates), which EXPLAIN EXECUTE of that
    statement shows."""
    sent: list[tuple[str, Any]] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith(sent_as):
            sent.append((statement, parameters))

    with db.session() as session:
        session_claim(session)
        session.rollback()
    event.remove(db.engine, "before_cursor_execute", record)
    assert len(sent) == 1, sent
    statement, parameters = sent[0]
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    raw = db.engine.raw_connection()
    try:
        connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        cursor = connection.cursor()
        # Each in a transaction of its own, as each claim is; committed (psycopg forgets its
        # prepared statements at a rollback): the statement's effects do not matter here.
        for _ in range(6):
            cursor.execute(statement, parameters, prepare=True)
            connection.commit()
        if generic:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE %s", [sent_as + "%"]
        )
        (prepared,) = cursor.fetchall()
        arguments = ", ".join(["%s"] * len(names))
        explain = f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {prepared[0]}({arguments})"
        written = psycopg.ClientCursor(connection)  # the arguments written into the SQL
        written.execute(explain, [parameters[name] for name in names])
        row = written.fetchone()
        assert row is not None
        plan: dict[str, Any] = row[0][0]["Plan"]
        raw.rollback()
    finally:
        raw.close()
    return plan


def nodes_of(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes_of(child)


def test_a_claim_reads_the_queue_in_order_only_as_far_as_its_window(db: Database) -> None:
    """With 400 runs queued, the candidates come from the queue's index in their order
    (``status, queued_at, id``) and the scan stops after the window: no sort of the whole
    queue on every claim (it read and sorted all 400 when the node's runtime and label test
    was inline, which the planner took to pass one row in a thousand)."""
    limits = ClaimLimits(per_plugin=1000, per_project=1000)
    node = NODES[0]
    for plugin in range(8):
        queue(db, f"p{plugin}", f"pr{plugin % 2}", "t", 50)
    with db.session() as session:
        session.execute(text("ANALYZE invocations"))
    plan = prepared_plan(
        db,
        lambda session: claim_store.claim(session, node.node_id, 2, LEASE_S, limits, node),
        "SELECT invocations.id, invocations.plugin_id",
        generic=False,
    )
    kinds = [step["Node Type"] for step in nodes_of(plan)]
    assert "Sort" not in kinds, kinds
    scans = [step for step in nodes_of(plan) if step.get("Relation Name") == "invocations"]
    assert [scan["Index Name"] for scan in scans] == ["ix_invocations_status_queued_id"]
    window = claim_store.locked_window(2)
    assert scans[0]["Actual Rows"] <= window, scans[0]


@pytest.mark.parametrize("commits", [True, False], ids=["committed", "rolled back"])
def test_a_hand_off_sent_before_its_claims_commit_waits_for_it(db: Database, commits: bool) -> None:
    """On PostgreSQL the dispatcher starts a claim's runs while the claim commits: a run's
    hand-off (the first write of its start, fenced by the lease) waits on the run's row for
    the claim's end, and hands off only a run that the commit kept."""
    queue(db, "p", "pr", "t", 1)
    node, limits = NODES[0], ClaimLimits(per_plugin=10, per_project=10)
    outcome: list[bool] = []
    with db.session() as session:
        (run,) = claim_store.claim(session, node.node_id, 1, LEASE_S, limits, node)
        deadline = run.queued_at + timedelta(seconds=LEASE_S)
        handed = outcome_store.HandOff(
            run.id, run.lease_generation, deadline, False, "f" * 64, "pr"
        )
        thread = threading.Thread(target=lambda: outcome.append(outcome_store.hand_off(db, handed)))
        thread.start()
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE '%UPDATE invocations%'"
        )
        with db.autocommit_connection() as watcher:
            while not watcher.execute(waiting).scalar():
                assert thread.is_alive(), outcome  # it may not end before the claim does
                time.sleep(0.01)  # polling the record, not timing it
        if not commits:
            session.rollback()
    thread.join()
    assert outcome == [commits]
    with db.session() as session:
        tokens = session.scalars(select(InvocationToken.invocation_id)).all()
        stored = session.get(Invocation, run.id)
    assert tokens == ([run.id] if commits else [])
    assert stored is not None and (stored.deadline_at is not None) is commits
    assert stored.status == (InvocationStatus.RUNNING if commits else InvocationStatus.QUEUED)


def test_a_claim_of_one_run_takes_it_by_keys_under_a_plan_made_once(db: Database) -> None:
    """The update that takes one run and reads its inputs keeps the generic plan the
    candidates' statement asks for (``claim_statements.PLAN_ONCE``), not planned again at
    each start. With 400 runs and their events stored, and 300 plugins, that plan finds the
    run by its primary key and its event, version and plugin by theirs: no table is
    scanned."""
    limits = ClaimLimits(per_plugin=1000, per_project=1000)
    node = NODES[0]
    for plugin in range(8):
        queue(db, f"p{plugin}", f"pr{plugin % 2}", "t", 50)
    with db.session() as session:
        others = [Plugin(name=f"other-{n}", tenant_id="t") for n in range(300)]
        session.add_all(others)
        session.flush()
        session.add_all(
            PluginVersion(plugin_id=other.id, number=1, source_sha256="x", source=b"")
            for other in others
        )
    with db.session() as session:
        session.execute(text("ANALYZE"))
    plan = prepared_plan(
        db,
        lambda session: claim_store.claim_with_inputs(
            session, node.node_id, 1, LEASE_S, limits, node
        ),
        "WITH taken AS",
        generic=True,
    )
    scans = {
        step["Relation Name"]: (step["Node Type"], step.get("Index Name"))
        for step in nodes_of(plan)
        if step.get("Relation Name") in ("invocations", "events", "plugin_versions", "plugins")
    }
    assert scans == {
        "invocations": ("Index Scan", "invocations_pkey"),
        "events": ("Index Scan", "events_pkey"),
        "plugin_versions": ("Index Scan", "plugin_versions_pkey"),
        "plugins": ("Index Scan", "plugins_pkey"),
    }, scans
