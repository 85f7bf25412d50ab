"""Claiming queued invocations: which ones a node takes (chosen by
``executor.store.claim_selection``), read and locked here, each taken under a new lease."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, literal, or_, select, text, union_all, update
from sqlalchemy.orm import Session

from executor.statuses import InvocationStatus, NodeState
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
    limit_keys,
)
from executor.store.clock import db_now
from executor.store.leases import take
from executor.store.tables import (
    Activation,
    DispatchLock,
    Invocation,
    Node,
    Tenant,
    Webhook,
    utcnow,
)

# ClaimLimits, NodeClaim and WebhookSlots are what ``claim`` takes: named here with it.
__all__ = [
    "CLAIM_WINDOW",
    "ClaimLimits",
    "NodeClaim",
    "WebhookSlots",
    "claim",
    "locked_window",
]


CLAIM_WINDOW = 64  # queued rows looked at per claim: enough to skip over blocked plugins


def locked_window(free: int) -> int:
    """The queued rows a claim with ``free`` slots looks at on PostgreSQL. It locks them,
    and other claimers skip them until it commits: a few more than it can take (plugins
    and projects at their limits are left out in the query already)."""
    return min(CLAIM_WINDOW, 2 * free + 4)


def _is_webhook() -> Any:
    """True for an invocation of a webhook version (a delivery, not a container run)."""
    return Invocation.version_id.in_(select(Webhook.version_id))


# CAPS: the rows of tenants' caps in ``_read_room`` (the limit keys' kinds are 1 to 3).
CAPS = 4
NO_CAP = -1  # a tenant's cap left to the default, in those rows


def _count_parts(
    plugins: set[str] | None, projects: set[str] | None, tenants: set[str] | None
) -> list[Select[int, str, int]]:
    running = Invocation.status == InvocationStatus.RUNNING
    return [
        select(literal(kind), column, func.count())
        .where(running, *([] if keys is None else [column.in_(keys)]), *where)
        .group_by(column)
        for kind, column, keys, where in (
            (PLUGIN_KEY, Invocation.plugin_id, plugins, ()),
            (PROJECT_KEY, Invocation.project_id, projects, ()),
            (TENANT_KEY, Invocation.tenant_id, tenants, (~_is_webhook(),)),
        )
        if keys is None or keys
    ]


def _running(
    session: Session,
    plugins: set[str] | None,
    projects: set[str] | None,
    tenants: set[str] | None,
    *more: Select[int, str, int],
) -> tuple[Running, list[tuple[int, str, int]]]:
    """How many runs of each of these keys run now (None: of every key that runs any),
    in one statement with ``more`` selects of the same shape (kind, key, number); returns
    the counts and the rows of ``more``. Each count reads the ``status`` index's running
    rows."""
    parts = [*_count_parts(plugins, projects, tenants), *more]
    counts = Running()
    if not parts:
        return counts, []
    by_kind = {PLUGIN_KEY: counts.by_plugin, PROJECT_KEY: counts.by_project}
    by_kind[TENANT_KEY] = counts.by_tenant
    other = []
    for kind, key, number in session.execute(union_all(*parts)).all():
        if int(kind) in by_kind:
            by_kind[int(kind)][str(key)] = int(number)
        else:
            other.append((int(kind), str(key), int(number)))
    return counts, other


def _lock_keys(session: Session, keys: set[tuple[int, str]]) -> None:
    """Take PostgreSQL's transaction advisory lock of each limit key, in one order for
    every claimer (so two claimers never wait on each other in a cycle); held until the
    commit. A claimer counts a key's running runs only while it holds its lock, and a run
    it takes is committed before the lock is released: the next claimer of that key counts
    it. Keys are hashed to 32 bits: two keys that share a lock only wait on each other."""
    if not keys:
        return
    values = ", ".join(f"({kind}, hashtext(:k{n}))" for n, (kind, _) in enumerate(sorted(keys)))
    params = {f"k{n}": key for n, (_, key) in enumerate(sorted(keys))}
    # OFFSET 0 keeps the sorted subquery whole: the locks are taken in its order.
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(kind, hash)) FROM "
            f"(SELECT kind, hash FROM (VALUES {values}) AS k (kind, hash) "
            "ORDER BY kind, hash OFFSET 0) AS sorted"
        ),
        params,
    )


def _warm_elsewhere(session: Session, node_id: str) -> set[str]:
    """Version ids that another ready node holds a warm container of and ``node_id`` not."""
    rows = session.execute(select(Node.id, Node.warm).where(Node.state == NodeState.READY))
    warm = {str(holder): counts or {} for holder, counts in rows.all()}
    own = warm.pop(node_id, {})
    return {version for counts in warm.values() for version in counts if version not in own}


def _read_room(session: Session, runs: int, webhooks: WebhookSlots, limits: ClaimLimits) -> Room:
    """The room with every tenant's cap and the running counts of every plugin, project
    and tenant, in one statement."""
    caps = select(literal(CAPS), Tenant.id, func.coalesce(Tenant.max_concurrent_runs, NO_CAP))
    counts, rows = _running(session, None, None, None, caps)
    tenant_caps = {tenant: limits.per_tenant if cap == NO_CAP else cap for _, tenant, cap in rows}
    return Room(runs, webhooks, limits, tenant_caps, counts)


def _claimable(
    room: Room, webhooks: WebhookSlots, now: datetime, window: int
) -> Select[Invocation, str | None, str | None, dict[str, Any] | None]:
    """Queued invocations due now, oldest first, leaving out those no slot could take: runs
    of a plugin or project at its limit, of a tenant at its cap, webhook deliveries when the
    webhook pool (or the tenant's share of it) is full, plugin runs when the run slots are.
    Left out in the query, not skipped in the window, so one plugin's or tenant's backlog
    cannot fill the window and starve the others. Each comes with its webhook version's id
    (None: a plugin run) and its activation's runtime and node selector, joined in."""
    is_webhook = _is_webhook()
    activation = (Activation.plugin_id == Invocation.plugin_id) & (
        Activation.project_id == Invocation.project_id
    )
    query = (
        select(Invocation, Webhook.version_id, Activation.runtime, Activation.node_selector)
        .outerjoin(Webhook, Webhook.version_id == Invocation.version_id)
        .outerjoin(Activation, activation)
    )
    query = query.where(
        Invocation.status == InvocationStatus.QUEUED,
        or_(Invocation.not_before.is_(None), Invocation.not_before <= now),
    )
    if busy := room.busy_tenants():
        query = query.where(or_(is_webhook, Invocation.tenant_id.not_in(busy)))
    if full := room.full_plugins():
        query = query.where(Invocation.plugin_id.not_in(full))
    if full := room.full_projects():
        query = query.where(Invocation.project_id.not_in(full))
    if room.runs <= 0:
        query = query.where(is_webhook)
    if room.webhooks <= 0:
        query = query.where(~is_webhook)
    elif full := webhooks.full_tenants():
        query = query.where(or_(~is_webhook, Invocation.tenant_id.not_in(full)))
    return query.order_by(Invocation.queued_at, Invocation.id).limit(window)


def _candidate(
    invocation: Invocation,
    hook_version: str | None,
    runtime: str | None,
    selector: dict[str, Any] | None,
) -> Candidate:
    return Candidate(
        id=invocation.id,
        plugin_id=invocation.plugin_id,
        project_id=invocation.project_id,
        tenant_id=invocation.tenant_id,
        version_id=invocation.version_id,
        queued_at=invocation.queued_at,
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
    """Claim up to ``slots`` queued plugin runs and up to ``webhooks.free`` webhook
    deliveries (each tenant within its share) for ``owner`` on ``node``, oldest first,
    within limits, each under a new lease generation.

    Claimers do not wait on each other as a whole. On PostgreSQL the candidate rows are
    locked with ``FOR UPDATE SKIP LOCKED`` (two claimers take different runs; a claim locks
    a small window, ``locked_window``), the limits are checked against running
    counts read without a lock to choose (the ones at their limit left out in the query),
    then, holding the
    advisory lock of every limit key the chosen runs count against (``_lock_keys``),
    against counts read again: a run another claimer took meanwhile is counted, so every
    limit holds exactly. Claimers of other plugins, projects and uncapped tenants never
    wait on each other. On SQLite (one process) the update of the one ``dispatch_lock``
    row serializes claims (its write lock), and the first counts are final.

    A plugin whose oldest runnable invocation is blocked by a limit gets nothing newer
    claimed (arrival order per plugin); one this node cannot run (its activation needs a
    runtime or labels the node lacks) is left for another node and blocks nothing.

    Warm-aware placement: a run queued less than ``grace_s`` ago whose version this node
    holds no warm container of, while another ready node does, is left for that node (it
    blocks nothing either); after the grace any node takes it, so nothing waits on a node
    that went away or whose warm container was taken meanwhile.

    Only a live node claims (``_alive``): ``ready``, and its heartbeat fresher than
    ``lease_s`` by the database's clock; leases expire ``lease_s`` after the database's now.
    """
    now = utcnow()
    if not _any_due(session, now):
        return []  # an idle poll: one read, no write (the heartbeat is renewed by beats)
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres:
        session.execute(
            update(DispatchLock).where(DispatchLock.id == 1).values(owner=owner, claimed_at=now)
        )
    beat = _alive(session, node.node_id, lease_s)
    if beat is None:
        return []  # drained, lost, or its heartbeat stale: read here, a drain holds at once
    expires = beat + timedelta(seconds=lease_s)
    room = _read_room(session, slots, webhooks, limits)
    if room.full():
        return []
    window = locked_window(slots + webhooks.free) if postgres else CLAIM_WINDOW
    query = _claimable(room, webhooks, now, window)
    if postgres:
        query = query.with_for_update(skip_locked=True, of=Invocation)
    rows = session.execute(query).all()
    if not rows:
        return []
    invocations = {invocation.id: invocation for invocation, *_ in rows}
    warm_elsewhere = _warm_elsewhere(session, node.node_id) if grace_s > 0 else set()
    fresh_since = now - timedelta(seconds=grace_s)
    picks = choose(room, [_candidate(*row) for row in rows], node, warm_elsewhere, fresh_since)
    if postgres and picks:
        picks = _confirm(session, room, picks, slots, webhooks, limits)
    for pick in picks:
        invocation = invocations[pick.id]
        take(invocation, owner, node.node_id, expires)
        invocation.started_at = now
        invocation.handler_started_at = None
        invocation.stdout_read_bytes = invocation.stderr_read_bytes = 0  # a new container
        invocation.attempt += 1
        invocation.not_before = None
    session.flush()
    return [invocations[pick.id] for pick in picks]


def _any_due(session: Session, now: datetime) -> bool:
    """Whether any invocation is queued and due (index ``status, queued_at``)."""
    due = select(Invocation.id).where(
        Invocation.status == InvocationStatus.QUEUED,
        or_(Invocation.not_before.is_(None), Invocation.not_before <= now),
    )
    return session.scalar(due.limit(1)) is not None


def _confirm(
    session: Session,
    room: Room,
    picks: list[Candidate],
    slots: int,
    webhooks: WebhookSlots,
    limits: ClaimLimits,
) -> list[Candidate]:
    """The picks that still fit once their limit keys are locked and counted again (runs
    other claimers took since the first count hold slots now), in order."""
    keys = limit_keys(room, picks)
    _lock_keys(session, keys)
    counts, _ = _running(
        session,
        {key for kind, key in keys if kind == PLUGIN_KEY},
        {key for kind, key in keys if kind == PROJECT_KEY},
        {key for kind, key in keys if kind == TENANT_KEY},
    )
    return confirm(Room(slots, webhooks, limits, room.tenant_caps, counts), picks)


def _alive(session: Session, node_id: str, lost_after_s: float) -> datetime | None:
    """The database's now if ``node_id`` may claim now (None if not), renewing its
    heartbeat if so: it is ``ready`` (registered, not drained, not marked lost) and its
    heartbeat is younger than ``lost_after_s`` by the database's clock. A node cut off
    from the store for longer (the database was down, the process paused) may be marked
    lost any moment, and what it claimed re-run elsewhere: it heartbeats first.

    The update locks the node's row until the commit: a concurrent ``mark_lost`` (which
    updates the row too) either committed first, and this matches nothing, or waits and
    then finds the heartbeat renewed. So what a node claims is its own for at least
    ``lost_after_s``. The state is read here, so a drain holds from the next claim.
    """
    result = session.execute(
        update(Node)
        .where(
            Node.id == node_id,
            Node.state == NodeState.READY,
            Node.heartbeat_at >= db_now(-lost_after_s),
        )
        .values(heartbeat_at=db_now())
        .returning(Node.heartbeat_at)
        .execution_options(synchronize_session=False)
    )
    return result.scalar()
