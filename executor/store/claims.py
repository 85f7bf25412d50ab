"""Claiming queued invocations: which ones a node takes (chosen by
``executor.store.claim_selection``), read and locked here, each taken under a new lease.
The statements are ``executor.store.claim_statements``', executed on the session's
connection: on PostgreSQL on its driver's cursor (``executor.store.driver_sql``), on SQLite
through SQLAlchemy (no ORM work but loading the runs taken)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.orm import Session

from executor.store import claim_statements as sql
from executor.store import queries as query_store
from executor.store.claim_selection import (
    NO_WEBHOOK_SLOTS,
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
from executor.store.driver_sql import DriverStatement, detached
from executor.store.queries import RunInputs
from executor.store.tables import Invocation, utcnow

# ClaimLimits, NodeClaim and WebhookSlots are what ``claim`` takes: named here with it.
__all__ = [
    "CLAIM_WINDOW",
    "ClaimLimits",
    "NodeClaim",
    "WebhookSlots",
    "claim",
    "claim_with_inputs",
    "locked_window",
]


CLAIM_WINDOW = 64  # queued rows looked at per claim: enough to skip over blocked plugins


def locked_window(free: int) -> int:
    """The queued rows a claim with ``free`` slots looks at on PostgreSQL. It locks them,
    and other claimers skip them until it commits: a few more than it can take (plugins
    and projects at their limits are left out in the query already)."""
    return min(CLAIM_WINDOW, 2 * free + 4)


def _tally(rows: Sequence[Sequence[Any]]) -> tuple[Running, list[tuple[int, str, int]]]:
    """The running counts among ``(kind, key, number)`` rows, and the other rows."""
    counts = Running()
    by_kind = {PLUGIN_KEY: counts.by_plugin, PROJECT_KEY: counts.by_project}
    by_kind[TENANT_KEY] = counts.by_tenant
    other = []
    for kind, key, number in rows:
        if int(kind) in by_kind:
            by_kind[int(kind)][str(key)] = int(number)
        else:
            other.append((int(kind), str(key), int(number)))
    return counts, other


def _warm_sets(connection: Connection) -> WarmSets:
    """Each ready node's warm set (``sql.WARM``)."""
    return {str(holder): counts or {} for holder, counts in connection.execute(sql.WARM)}


def _warm_elsewhere(warm: WarmSets, node_id: str) -> set[str]:
    """Version ids that another ready node holds a warm container of and ``node_id`` not."""
    own = warm.get(node_id) or {}
    return {
        version
        for holder, counts in warm.items()
        if holder != node_id
        for version in counts or {}
        if version not in own
    }


def _runnable_here(node: NodeClaim) -> dict[str, Any]:
    """The parameters of ``claim_statements``' test of what ``node`` may run."""
    return {
        "node_runtimes": sorted(node.runtimes),
        "node_default_runtime": node.default_runtime,
        "node_labels": node.labels,
    }


def _node_filters(node: NodeClaim, warm: set[str], fresh_since: datetime) -> dict[str, Any]:
    """The parameters of the locked candidates' node filters (``claim_statements``)."""
    return _runnable_here(node) | {"warm": sorted(warm), "fresh_since": fresh_since}


# Each ready node's warm set: node id -> {version id: ready containers}.
WarmSets = dict[str, dict[str, int]]
# The database's now, the running counts, the tenants' caps, and (PostgreSQL: read by the
# same statement; SQLite: None, read when needed) the ready nodes' warm sets.
Opened = tuple[datetime, Running, list[tuple[int, str, int]], WarmSets | None]
# The runs a claim took, in order, and (when asked for) what each runs, by id.
Claimed = tuple[list[Invocation], dict[str, RunInputs]]
NOTHING: Claimed = ([], {})

# The statements of a claim on PostgreSQL, run on the driver's cursor (``driver_sql``).
_OPEN = DriverStatement.of(sql.OPEN_POSTGRES)
# The update that takes the picks, by (one pick, with the runs' inputs); with the inputs, the
# update is a CTE and what its runs run is read from what it returns, in one statement. One
# pick is the usual claim, and its plan is kept (``claim_statements.PLAN_ONCE``); several
# are planned for their number, and not prepared.
_TAKES = {
    (one, inputs): DriverStatement.of(
        query_store.input_columns(taking.cte("taken")) if inputs else taking, prepared=one
    )
    for one, taking in ((True, sql.TAKE_ONE_FITTING), (False, sql.TAKE_FITTING))
    for inputs in (True, False)
}


@lru_cache(maxsize=64)
def _candidates(window: int) -> DriverStatement:
    return DriverStatement.of(sql.candidates_postgres(window))


def _open(
    connection: Connection, owner: str, node: NodeClaim, lease_s: float, now: datetime
) -> Opened | None:
    """The database's now (the renewed heartbeat), the running counts, the tenants' caps
    and, on PostgreSQL, the ready nodes' warm sets; None when nothing is due (an idle poll:
    no write; on PostgreSQL, nothing ``node`` may run) or the node may not claim (drained,
    lost, or its heartbeat stale: a drain holds at once)."""
    beat = {"node": node.node_id, "stale_after": -lease_s, "now": now}
    if connection.dialect.name == "postgresql":
        rows = _OPEN.rows(connection, beat | _runnable_here(node))
        if not rows:
            return None
        counts, caps = _tally([row[1:4] for row in rows if row[1] is not None])
        return rows[0][0], counts, caps, rows[0][4] or {}
    # SQLite: the update of the one dispatch_lock row takes the write lock first (claims
    # are serialized there), then the heartbeat and the counts.
    if connection.execute(sql.ANY_DUE, {"now": now}).first() is None:
        return None
    connection.execute(sql.DISPATCH_LOCK, {"owner": owner, "now": now})
    heartbeat = connection.execute(sql.HEARTBEAT, beat).scalar()
    if heartbeat is None:
        return None
    return heartbeat, *_tally(connection.execute(sql.ROOM).all()), None


def _room(
    runs: int, webhooks: WebhookSlots, limits: ClaimLimits, counts: Running, caps: Any
) -> Room:
    """The claim's room: its free slots, the running counts, and each tenant's cap."""
    tenant_caps = {t: limits.per_tenant if cap == sql.NO_CAP else cap for _, t, cap in caps}
    return Room(runs, webhooks, limits, tenant_caps, counts)


def _claimable(room: Room, webhooks: WebhookSlots) -> Select[Any]:
    """``claim_statements.candidates`` leaving out those no slot could take: runs of a
    plugin or project at its limit, of a tenant at its cap, webhook deliveries when the
    webhook pool (or the tenant's share of it) is full, plugin runs when the run slots are.
    Left out in the query, not skipped in the window, so one plugin's or tenant's backlog
    cannot fill the window and starve the others. (SQLite; PostgreSQL binds the same as
    parameters of one statement: ``_left_out``.)"""
    query = sql.candidates(CLAIM_WINDOW, locked=False)
    is_webhook = sql.is_webhook()
    if busy := room.busy_tenants():
        query = query.where(is_webhook | Invocation.tenant_id.not_in(busy))
    if full := room.full_plugins():
        query = query.where(Invocation.plugin_id.not_in(full))
    if full := room.full_projects():
        query = query.where(Invocation.project_id.not_in(full))
    if room.runs <= 0:
        query = query.where(is_webhook)
    if room.webhooks <= 0:
        query = query.where(~is_webhook)
    elif full := webhooks.full_tenants():
        query = query.where(~is_webhook | Invocation.tenant_id.not_in(full))
    return query


def _left_out(room: Room, webhooks: WebhookSlots) -> dict[str, Any]:
    """``claim_statements.candidates_postgres``' parameters: what ``_claimable`` leaves
    out."""
    return {
        "busy_tenants": sorted(room.busy_tenants()),
        "full_plugins": sorted(room.full_plugins()),
        "full_projects": sorted(room.full_projects()),
        "runs_open": room.runs > 0,
        "webhooks_open": room.webhooks > 0,
        "full_webhook_tenants": sorted(webhooks.full_tenants()),
    }


def _candidate(row: Sequence[Any]) -> Candidate:
    run_id, plugin, project, tenant, version, queued_at, hook_version, runtime, selector = row
    return Candidate(
        id=run_id,
        plugin_id=plugin,
        project_id=project,
        tenant_id=tenant,
        version_id=version,
        queued_at=queued_at,
        webhook=hook_version is not None,
        runtime=runtime,
        selector=selector,
    )


def claim(
    session: Session,
    owner: str,
    slots: int,
    lease_s: float,
    limits: ClaimLimits,
    node: NodeClaim,
    grace_s: float = 0.0,
    webhooks: WebhookSlots = NO_WEBHOOK_SLOTS,
) -> list[Invocation]:
    """``claim_with_inputs`` without the inputs."""
    args = (session, owner, slots, lease_s, limits, node, grace_s, webhooks)
    return claim_with_inputs(*args, read_inputs=False)[0]


def claim_with_inputs(
    session: Session,
    owner: str,
    slots: int,
    lease_s: float,
    limits: ClaimLimits,
    node: NodeClaim,
    grace_s: float = 0.0,
    webhooks: WebhookSlots = NO_WEBHOOK_SLOTS,
    *,
    read_inputs: bool = True,
) -> Claimed:
    """Claim up to ``slots`` queued plugin runs and up to ``webhooks.free`` webhook
    deliveries (each tenant within its share) for ``owner`` on ``node``, oldest first,
    within limits, each under a new lease generation.

    Claimers do not wait on each other as a whole. On PostgreSQL the candidate rows are
    locked with ``FOR UPDATE SKIP LOCKED`` (two claimers take different runs; a claim locks
    a small window, ``locked_window``), the limits are checked against running counts read
    without a lock to choose (the ones at their limit left out in the query), then by the
    update that takes the chosen runs (``claim_statements.TAKE_FITTING``): it holds the
    advisory lock of every limit key they count against and counts again, so a run
    another claimer took meanwhile is counted and every limit holds exactly, and takes
    them only if they all fit (else the claim takes those that still fit, ``_confirm``).
    Claimers of other plugins, projects and uncapped tenants never wait on each other.
    On SQLite (one process) the update of the one ``dispatch_lock`` row serializes claims
    (its write lock), and the first counts are final.

    A plugin whose oldest runnable invocation is blocked by a limit gets nothing newer
    claimed (arrival order per plugin); one this node cannot run (its activation needs a
    runtime or labels the node lacks) is left for another node and blocks nothing.

    Warm-aware placement: a run queued less than ``grace_s`` ago whose version this node
    holds no warm container of, while another ready node does, is left for that node (it
    blocks nothing either); after the grace any node takes it, so nothing waits on a node
    that went away or whose warm container was taken meanwhile.

    Only a live node claims (``claim_statements.HEARTBEAT``): ``ready``, and its heartbeat
    fresher than ``lease_s`` by the database's clock; leases expire ``lease_s`` after the
    database's now.

    On PostgreSQL a claim that takes runs is three statements: the heartbeat with the
    counts (``claim_statements.OPEN_POSTGRES``), the candidates, and the update; an idle
    one (nothing due that this node may run) is the first alone, and writes nothing.
    ``read_inputs`` False: the runs only (``claim``).
    """
    now = utcnow()
    connection = session.connection()
    opened = _open(connection, owner, node, lease_s, now)
    if opened is None:
        return NOTHING
    beat, counts, caps, warm = opened
    room = _room(slots, webhooks, limits, counts, caps)
    if room.full():
        return NOTHING
    postgres = connection.dialect.name == "postgresql"
    warm_elsewhere = (
        _warm_elsewhere(_warm_sets(connection) if warm is None else warm, node.node_id)
        if grace_s > 0
        else set()
    )
    fresh_since = now - timedelta(seconds=grace_s)
    params: dict[str, Any] = {"now": now}
    found: Sequence[Sequence[Any]]
    if postgres:  # the node's own filters, so it locks only what it would take
        params |= _node_filters(node, warm_elsewhere, fresh_since) | _left_out(room, webhooks)
        found = _candidates(locked_window(slots + webhooks.free)).rows(connection, params)
    else:
        found = connection.execute(_claimable(room, webhooks), params).all()
    candidates = [_candidate(row) for row in found]
    if not candidates:
        return NOTHING
    picks = choose(room, candidates, node, warm_elsewhere, fresh_since)
    if not picks:
        return NOTHING
    expires = beat + timedelta(seconds=lease_s)
    # The runs start now, not at the claim's first statement: on SQLite the claim may have
    # waited for the write lock behind the end of a run whose slot it takes, and a start
    # recorded before that end would read as the limit broken.
    started = utcnow()
    taking = {"taker": owner, "on_node": node.node_id, "expiry": expires, "now": started}
    if not postgres:
        by_id = {run.id: run for run in session.scalars(sql.TAKE, taking | _ids(picks))}
        taken = _in_order(picks, by_id)
        return taken, (query_store.inputs_of(session, [i.id for i in taken]) if read_inputs else {})
    claimed = _take_fitting(connection, picks, taking | _fit(room, picks), read_inputs)
    if claimed[0]:
        return claimed
    # Another claimer took runs of these keys since the first count: take what still fits.
    picks = _confirm(connection, room, picks, slots, webhooks, limits)
    return (
        _take_fitting(connection, picks, taking | _fit(room, picks), read_inputs)
        if picks
        else NOTHING
    )


def _ids(picks: list[Candidate]) -> dict[str, list[str]]:
    return {"ids": [pick.id for pick in picks]}


def _chosen(picks: list[Candidate]) -> dict[str, Any]:
    """The parameters naming the picks in ``_TAKES``' statement for them."""
    return {"id": picks[0].id} if len(picks) == 1 else _ids(picks)


def _in_order(picks: list[Candidate], by_id: dict[str, Invocation]) -> list[Invocation]:
    return [by_id[pick.id] for pick in picks if pick.id in by_id]


def _take_fitting(
    connection: Connection, picks: list[Candidate], params: dict[str, Any], with_inputs: bool
) -> Claimed:
    """The picks taken (PostgreSQL, ``claim_statements.TAKE_ONE_FITTING`` for one,
    ``TAKE_FITTING`` for several), in their order; ``with_inputs``: with what each runs,
    read by the same statement."""
    statement = _TAKES[len(picks) == 1, with_inputs]
    rows = statement.rows(connection, params | _chosen(picks))
    if not with_inputs:
        runs = [detached(Invocation, row) for row in rows]
        return _in_order(picks, {run.id: run for run in runs if run is not None}), {}
    taken = dict(query_store.inputs_of_columns(row) for row in rows)
    by_id = {run.id: run for run in taken}
    return _in_order(picks, by_id), {run.id: inputs for run, inputs in taken.items()}


def _fit(room: Room, picks: list[Candidate]) -> dict[str, list[Any]]:
    """``claim_fits``' parameters for the picks (``fit_request``)."""
    kinds, keys, adds, caps = zip(*fit_request(room, picks), strict=True)
    return {"kinds": list(kinds), "keys": list(keys), "adds": list(adds), "caps": list(caps)}


def _confirm(
    connection: Connection,
    room: Room,
    picks: list[Candidate],
    slots: int,
    webhooks: WebhookSlots,
    limits: ClaimLimits,
) -> list[Candidate]:
    """The picks that still fit their limit keys counted again (runs other claimers took
    since the first count hold slots now), in order; ``claim_fits`` holds the keys' locks
    already, so the counts stay true until the commit."""
    keys = sorted(limit_keys(room, picks))
    locked = {"kinds": [kind for kind, _ in keys], "keys": [key for _, key in keys]}
    counts, _ = _tally(connection.execute(sql.LOCKED_COUNTS, locked).all())
    return confirm(Room(slots, webhooks, limits, room.tenant_caps, counts), picks)
