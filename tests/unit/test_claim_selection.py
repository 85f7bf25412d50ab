"""The choice of a claim (``executor.store.claim_selection``) as a table: candidates (oldest
first), the node's free slots, the limits and the running counts in, the invocations it
takes out. No database: the claim's SQL and locking are covered by test_claim_race,
test_claim_fairness, test_fencing and test_postgres."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from executor.store.claim_selection import (
    PLUGIN_KEY,
    PROJECT_KEY,
    TENANT_KEY,
    Candidate,
    ClaimLimits,
    NodeClaim,
    Room,
    Running,
    WebhookSlots,
    choose,
    confirm,
    fit_request,
    limit_keys,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
NODE = NodeClaim("node-1", frozenset({"runc", "runsc"}), {"zone": "a"}, "runsc")
WIDE = ClaimLimits(per_plugin=100, per_project=100)


def run(
    id: str,
    *,
    plugin: str | None = None,
    project: str = "p1",
    tenant: str = "t1",
    webhook: bool = False,
    runtime: str | None = None,
    selector: dict[str, Any] | None = None,
    age_s: float = 600,
) -> Candidate:
    """A candidate named ``id``; its plugin (and version) default to the id's letters
    ("a2" is plugin "a"), queued ``age_s`` before T0."""
    name = plugin or id.rstrip("0123456789")
    return Candidate(
        id=id,
        plugin_id=name,
        project_id=project,
        tenant_id=tenant,
        version_id=f"v-{name}",
        queued_at=T0 - timedelta(seconds=age_s),
        webhook=webhook,
        runtime=runtime,
        selector=selector,
    )


@dataclass(frozen=True)
class Case:
    name: str
    candidates: list[Candidate]
    taken: list[str]
    runs: int = 10
    webhooks: WebhookSlots = field(default_factory=WebhookSlots)
    limits: ClaimLimits = WIDE
    caps: dict[str, int | None] = field(default_factory=dict)
    running: Running = field(default_factory=Running)
    warm_elsewhere: frozenset[str] = frozenset()
    grace_s: float = 0.0


CASES = [
    Case(
        "oldest first, up to the free run slots",
        [run("a1"), run("b1"), run("c1")],
        ["a1", "b1"],
        runs=2,
    ),
    Case(
        "no free slot of either kind takes nothing",
        [run("a1"), run("h1", webhook=True)],
        [],
        runs=0,
    ),
    Case(
        "a plugin at its limit: its later runs wait, others' are taken",
        [run("a1"), run("a2"), run("b1")],
        ["a1", "b1"],
        limits=ClaimLimits(per_plugin=1, per_project=100),
    ),
    Case(
        "runs already running count against the plugin's limit",
        [run("a1"), run("b1")],
        ["b1"],
        limits=ClaimLimits(per_plugin=1, per_project=100),
        running=Running(by_plugin={"a": 1}),
    ),
    Case(
        "a project at its limit",
        [run("a1"), run("b1"), run("c1", project="p2")],
        ["a1", "c1"],
        limits=ClaimLimits(per_plugin=100, per_project=1),
    ),
    Case(
        "the default tenant cap counts the tenant's runs",
        [run("a1"), run("b1"), run("c1", tenant="t2")],
        ["a1", "c1"],
        limits=ClaimLimits(per_plugin=100, per_project=100, per_tenant=1),
    ),
    Case(
        "a tenant's own cap overrides the default",
        [run("a1"), run("b1"), run("c1")],
        ["a1", "b1"],
        limits=ClaimLimits(per_plugin=100, per_project=100, per_tenant=1),
        caps={"t1": 2},
    ),
    Case(
        "a tenant's cap left to a default of none: no cap",
        [run("a1"), run("b1"), run("c1")],
        ["a1", "b1", "c1"],
        caps={"t1": None},
    ),
    Case(
        "a tenant at its cap with runs running gets none",
        [run("a1"), run("b1", tenant="t2")],
        ["b1"],
        caps={"t1": 2},
        running=Running(by_tenant={"t1": 2}),
    ),
    Case(
        "webhook deliveries do not count against the tenant's cap of runs",
        [run("a1"), run("h1", webhook=True)],
        ["h1"],
        webhooks=WebhookSlots(free=1, per_tenant=1),
        caps={"t1": 1},
        running=Running(by_tenant={"t1": 1}),
    ),
    Case(
        "no run slot: only webhook deliveries are taken",
        [run("a1"), run("h1", webhook=True)],
        ["h1"],
        runs=0,
        webhooks=WebhookSlots(free=1, per_tenant=1),
    ),
    Case(
        "no webhook slot: deliveries wait, runs are taken",
        [run("h1", webhook=True), run("a1")],
        ["a1"],
    ),
    Case(
        "each tenant's deliveries up to its share of the webhook pool",
        [run("h1", webhook=True), run("g1", webhook=True), run("k1", webhook=True, tenant="t2")],
        ["h1", "k1"],
        webhooks=WebhookSlots(free=3, per_tenant=1),
    ),
    Case(
        "deliveries a tenant holds on the node count against its share",
        [run("h1", webhook=True), run("k1", webhook=True, tenant="t2")],
        ["k1"],
        webhooks=WebhookSlots(free=3, per_tenant=1, held={"t1": 1}),
    ),
    Case(
        "a plugin whose oldest run is blocked gets nothing newer (arrival order)",
        [run("a1", project="p1"), run("a2", project="p2"), run("b1", project="p2")],
        ["b1"],
        limits=ClaimLimits(per_plugin=100, per_project=1),
        running=Running(by_project={"p1": 1}),
    ),
    Case(
        "a run needing a runtime the node lacks is left, and blocks nothing",
        [run("a1", runtime="kata"), run("a2"), run("b1", runtime="runc")],
        ["a2", "b1"],
    ),
    Case(
        "a run whose selector the node's labels do not match is left",
        [run("a1", selector={"zone": "b"}), run("b1", selector={"zone": "a"})],
        ["b1"],
    ),
    Case(
        "a fresh run warm on another node is left to it, and blocks nothing",
        [run("a1", age_s=1), run("b1", age_s=1), run("a2", age_s=1)],
        ["b1"],
        warm_elsewhere=frozenset({"v-a"}),
        grace_s=5,
    ),
    Case(
        "after the grace a run warm elsewhere is taken here",
        [run("a1", age_s=10), run("a2", age_s=1)],
        ["a1"],
        warm_elsewhere=frozenset({"v-a"}),
        grace_s=5,
    ),
    Case(
        "placement off (no grace): warm elsewhere changes nothing",
        [run("a1", age_s=1)],
        ["a1"],
        warm_elsewhere=frozenset({"v-a"}),
    ),
]


def room(case: Case) -> Room:
    return Room(case.runs, case.webhooks, case.limits, case.caps, case.running)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_choose(case: Case) -> None:
    fresh_since = T0 - timedelta(seconds=case.grace_s)
    picks = choose(room(case), case.candidates, NODE, case.warm_elsewhere, fresh_since)
    assert [pick.id for pick in picks] == case.taken


def test_choosing_updates_the_room() -> None:
    claim = Room(2, WebhookSlots(free=2, per_tenant=2), WIDE, {}, Running())
    choose(claim, [run("a1"), run("h1", webhook=True), run("b1", tenant="t2")], NODE)
    assert (claim.runs, claim.webhooks, claim.webhooks_held) == (0, 1, {"t1": 1})
    assert claim.counts == Running({"a": 1, "h": 1, "b": 1}, {"p1": 3}, {"t1": 1, "t2": 1})


@dataclass(frozen=True)
class Recount:
    name: str
    running: Running
    kept: list[str]


PICKS = [run("a1"), run("b1"), run("a2")]
RECOUNTS = [
    Recount("nothing taken meanwhile: every pick kept", Running(), ["a1", "b1", "a2"]),
    Recount(
        "another claimer took one of a plugin's slots: its later pick goes",
        Running(by_plugin={"a": 1}),
        ["a1", "b1"],
    ),
    Recount(
        "a plugin's first pick no longer fits: none of its later picks either",
        Running(by_plugin={"a": 2}),
        ["b1"],
    ),
    Recount("the tenant reached its cap meanwhile: none kept", Running(by_tenant={"t1": 3}), []),
]


@pytest.mark.parametrize("recount", RECOUNTS, ids=[r.name for r in RECOUNTS])
def test_confirm(recount: Recount) -> None:
    limits = ClaimLimits(per_plugin=2, per_project=100, per_tenant=3)
    locked = Room(3, WebhookSlots(), limits, {}, recount.running)
    assert [pick.id for pick in confirm(locked, PICKS)] == recount.kept


@pytest.mark.parametrize("recount", RECOUNTS, ids=[r.name for r in RECOUNTS])
def test_the_fit_check_passes_exactly_when_confirm_keeps_every_pick(recount: Recount) -> None:
    """PostgreSQL's ``claim_fits`` checks, per key, running + what the picks add <= cap
    (``fit_request``'s rows); when it fails, the claim falls back to ``confirm``. The two
    must agree on "all fit", or a claim would take more (or less) than the choice allows."""
    limits = ClaimLimits(per_plugin=2, per_project=100, per_tenant=3)
    running = recount.running
    counts = {PLUGIN_KEY: running.by_plugin, PROJECT_KEY: running.by_project}
    counts[TENANT_KEY] = running.by_tenant
    request = fit_request(Room(3, WebhookSlots(), limits, {}, Running()), PICKS)
    fits = all(counts[kind].get(key, 0) + adds <= cap for kind, key, adds, cap in request)
    locked = Room(3, WebhookSlots(), limits, {}, running)
    assert fits == (len(confirm(locked, PICKS)) == len(PICKS))


def test_the_fit_request_counts_a_tenants_plugin_runs_against_its_own_cap() -> None:
    limits = ClaimLimits(per_plugin=5, per_project=7, per_tenant=3)
    claim = Room(5, WebhookSlots(free=5, per_tenant=5), limits, {"t2": None, "t3": 9}, Running())
    picks = [
        run("a1"),
        run("a2", tenant="t3"),
        run("h1", webhook=True, project="p2"),  # counts against its plugin and project only
        run("b1", tenant="t2"),  # t2 has no cap: no tenant key
    ]
    assert fit_request(claim, picks) == [
        (PLUGIN_KEY, "a", 2, 5),
        (PLUGIN_KEY, "b", 1, 5),
        (PLUGIN_KEY, "h", 1, 5),
        (PROJECT_KEY, "p1", 3, 7),
        (PROJECT_KEY, "p2", 1, 7),
        (TENANT_KEY, "t1", 1, 3),
        (TENANT_KEY, "t3", 1, 9),
    ]


def test_limit_keys_name_the_tenant_only_for_capped_plugin_runs() -> None:
    claim = Room(5, WebhookSlots(free=5, per_tenant=5), WIDE, {"t1": 2}, Running())
    picks = [run("a1"), run("h1", webhook=True, project="p2"), run("b1", tenant="t2")]
    assert limit_keys(claim, picks) == {
        (PLUGIN_KEY, "a"),
        (PLUGIN_KEY, "h"),
        (PLUGIN_KEY, "b"),
        (PROJECT_KEY, "p1"),
        (PROJECT_KEY, "p2"),
        (TENANT_KEY, "t1"),
    }


def test_the_query_leaves_out_what_no_slot_could_take() -> None:
    limits = ClaimLimits(per_plugin=1, per_project=2, per_tenant=1)
    counts = Running({"a": 1, "b": 0}, {"p1": 2, "p2": 1}, {"t1": 1, "t2": 0, "t3": 5})
    claim = Room(1, WebhookSlots(), limits, {"t3": None}, counts)
    assert (claim.full_plugins(), claim.full_projects()) == ({"a"}, {"p1"})
    assert claim.busy_tenants() == {"t1"}
    assert WebhookSlots(free=2, per_tenant=1, held={"t1": 1, "t2": 0}).full_tenants() == {"t1"}
