"""How a claim shares a node between tenants (issue 22, item 6), on SQLite without Docker:
webhook deliveries take webhook slots (each tenant up to its share), plugin runs take run
slots, and neither one tenant's held deliveries nor its backlog keeps another tenant's
invocations from being claimed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from executor.statuses import InvocationStatus
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation, Plugin, PluginVersion, Tenant, Webhook, utcnow

LIMITS = claim_store.ClaimLimits(per_plugin=100, per_project=100)
NODE = claim_store.NodeClaim("node-1", frozenset({"runc"}), {}, "runc")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    with database.session() as session:  # only a registered node with a fresh heartbeat claims
        info = node_store.NodeInfo(NODE.node_id, "me", "20.10", ["runc"], 10, 0)
        node_store.register(session, info)
    return database


def queue(
    db: Database,
    tenant: str,
    name: str,
    count: int,
    *,
    webhook: bool = False,
    status: InvocationStatus = InvocationStatus.QUEUED,
    age_s: float = 0.0,
) -> None:
    """``count`` invocations of a new plugin ``name`` of ``tenant`` (a webhook when
    ``webhook``), queued ``age_s`` ago, one second apart in arrival order."""
    with db.session() as session:
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(id=tenant))
            session.flush()
        plugin = Plugin(name=name, tenant_id=tenant)
        session.add(plugin)
        session.flush()
        version = PluginVersion(plugin_id=plugin.id, number=1, source_sha256="x", source=b"")
        event = Event(type="onSubmit", project_id=f"p-{tenant}", tenant_id=tenant)
        session.add_all([version, event])
        session.flush()
        if webhook:
            session.add(Webhook(version_id=version.id, url="https://h.test/", signing_secret="s"))
        queued_at = utcnow() - timedelta(seconds=age_s)
        for n in range(count):
            session.add(
                Invocation(
                    tenant_id=tenant,
                    event_id=event.id,
                    plugin_id=plugin.id,
                    version_id=version.id,
                    plugin_name=name,
                    version_number=1,
                    project_id=f"p-{tenant}",
                    event_type="onSubmit",
                    status=status,
                    queued_at=queued_at + timedelta(seconds=n),
                )
            )


def claim(db: Database, runs: int, webhooks: claim_store.WebhookSlots) -> list[tuple[str, str]]:
    with db.session() as session:
        claimed = claim_store.claim(session, "me", runs, 30, LIMITS, NODE, webhooks=webhooks)
        return sorted((i.tenant_id, i.plugin_name) for i in claimed)


def test_webhook_deliveries_take_webhook_slots_each_tenant_up_to_its_share(db: Database) -> None:
    queue(db, "slowco", "slow-hook", 5, webhook=True, age_s=60)
    queue(db, "quickco", "quick-hook", 1, webhook=True)
    queue(db, "quickco", "quick-run", 2)
    slots = claim_store.WebhookSlots(free=4, per_tenant=2)

    assert claim(db, 1, slots) == [
        ("quickco", "quick-hook"),
        ("quickco", "quick-run"),  # one run slot: one run, whatever the deliveries took
        ("slowco", "slow-hook"),
        ("slowco", "slow-hook"),  # its share of the pool, though it queued first
    ]


def test_deliveries_a_tenant_holds_count_against_its_share(db: Database) -> None:
    queue(db, "slowco", "slow-hook", 3, webhook=True)
    held = claim_store.WebhookSlots(free=6, per_tenant=2, held={"slowco": 1})

    assert claim(db, 4, held) == [("slowco", "slow-hook")]
    full = claim_store.WebhookSlots(free=6, per_tenant=2, held={"slowco": 2})
    assert claim(db, 4, full) == []


def test_a_tenants_backlog_beyond_the_claim_window_hides_no_other_tenants_work(
    db: Database,
) -> None:
    """slowco's deliveries past its share and its runs past its cap fill more than a claim
    window, all older than quickco's: quickco's delivery and run are claimed all the same."""
    window = claim_store.CLAIM_WINDOW
    with db.session() as session:
        session.add(Tenant(id="slowco", max_concurrent_runs=1))
    queue(db, "slowco", "slow-run", 1, status=InvocationStatus.RUNNING)
    queue(db, "slowco", "slow-run-2", window, age_s=4 * window)
    queue(db, "slowco", "slow-hook", window, webhook=True, age_s=2 * window)
    queue(db, "quickco", "quick-hook", 1, webhook=True)
    queue(db, "quickco", "quick-run", 1)
    share_held = claim_store.WebhookSlots(free=4, per_tenant=2, held={"slowco": 2})

    assert claim(db, 2, share_held) == [("quickco", "quick-hook"), ("quickco", "quick-run")]


def test_deliveries_do_not_count_against_the_tenant_cap_of_runs(db: Database) -> None:
    with db.session() as session:
        session.add(Tenant(id="capped", max_concurrent_runs=1))
    queue(db, "capped", "hook", 1, webhook=True, status=InvocationStatus.RUNNING)
    queue(db, "capped", "run", 2)

    assert claim(db, 4, claim_store.WebhookSlots()) == [("capped", "run")]
