"""Queries on events and invocations: ingest, claim, finish."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, literal, or_, select, text, union_all, update
from sqlalchemy.orm import Session, raiseload

from executor.errors import Conflict, NotFound
from executor.statuses import (
    TERMINAL_STATUSES,
    AttemptKind,
    InvocationStatus,
    NodeState,
    RunErrorType,
)
from executor.store import logs as log_store
from executor.store.clock import database_now, db_now
from executor.store.run_errors import RunError
from executor.store.tables import (
    Activation,
    DispatchLock,
    Event,
    Invocation,
    Node,
    Plugin,
    PluginVersion,
    Tenant,
    Webhook,
    utcnow,
)

__all__ = [
    "ClaimLimits",
    "InfraFailing",
    "NodeClaim",
    "Outcomes",
    "RunInputs",
    "RunOutput",
    "WebhookSlots",
    "add_event",
    "add_invocation",
    "adopt",
    "begin_hand_off",
    "claim",
    "count_by_status",
    "fence",
    "find_event",
    "find_invocation",
    "finish",
    "get_invocation",
    "infrastructure_failing",
    "list_invocations",
    "mark_handler_started",
    "note_output_read",
    "oldest_queued_at",
    "plugin_deleted",
    "plugin_failures",
    "recent_outcomes",
    "renew_leases",
    "replay",
    "requeue_expired",
    "retry_later",
    "run_inputs",
]


def add_event(session: Session, **fields: Any) -> Event:
    event = Event(**{k: v for k, v in fields.items() if v is not None})
    session.add(event)
    session.flush()
    return event


def get_invocation(
    session: Session, invocation_id: str, tenant_id: str | None = None
) -> Invocation:
    """The invocation; NotFound if there is none (or it is not ``tenant_id``'s, when given)."""
    invocation = session.get(Invocation, invocation_id)
    if invocation is None or tenant_id not in (None, invocation.tenant_id):
        raise NotFound(f"no invocation {invocation_id!r}")
    return invocation


def list_invocations(
    session: Session,
    *,
    tenant_id: str,
    plugin_name: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    skip: int = 0,
) -> list[Invocation]:
    query = select(Invocation).where(Invocation.tenant_id == tenant_id)
    if plugin_name is not None:
        query = query.where(Invocation.plugin_name == plugin_name)
    if project_id is not None:
        query = query.where(Invocation.project_id == project_id)
    if status is not None:
        query = query.where(Invocation.status == status)
    query = query.order_by(Invocation.queued_at.desc()).offset(skip).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class Outcomes:
    """How a version's latest ended runs went: ``failed`` of ``runs`` did not succeed."""

    runs: int
    failed: int


# Canceled runs (their plugin deleted, an operator's cancel) say nothing of the version.
_JUDGED = sorted(TERMINAL_STATUSES - {InvocationStatus.CANCELED})


def recent_outcomes(
    session: Session, tenant_id: str, plugin_name: str, version_id: str, limit: int
) -> Outcomes:
    """The ``limit`` latest ended runs of a version (canceled ones left out): how many,
    and how many did not succeed."""
    statuses = session.scalars(
        select(Invocation.status)
        .where(
            Invocation.tenant_id == tenant_id,
            Invocation.plugin_name == plugin_name,
            Invocation.version_id == version_id,
            Invocation.status.in_(_JUDGED),
        )
        .order_by(Invocation.queued_at.desc())
        .limit(limit)
    ).all()
    failed = sum(1 for status in statuses if status != InvocationStatus.SUCCEEDED)
    return Outcomes(runs=len(statuses), failed=failed)


CLAIM_WINDOW = 64  # queued rows looked at per claim: enough to skip over blocked plugins


def locked_window(free: int) -> int:
    """The queued rows a claim with ``free`` slots looks at on PostgreSQL. It locks them,
    and other claimers skip them until it commits: a few more than it can take (plugins
    and projects at their limits are left out in the query already)."""
    return min(CLAIM_WINDOW, 2 * free + 4)


@dataclass(frozen=True)
class RunOutput:
    """How much log a finished run wrote, and whether some of it was dropped."""

    log_bytes: int
    truncated: bool


@dataclass(frozen=True)
class ClaimLimits:
    """Concurrency limits checked at claim time, across every executor sharing the store."""

    per_plugin: int
    per_project: int
    per_tenant: int | None = None  # the default tenant quota; None: no cap


@dataclass(frozen=True)
class WebhookSlots:
    """The webhook deliveries a node can take on now, apart from its plugin run slots:
    ``free`` threads of its webhook pool, of which one tenant may hold ``per_tenant`` at
    once; ``held`` is what each tenant's deliveries hold on the node now."""

    free: int = 0
    per_tenant: int = 0
    held: Mapping[str, int] = field(default_factory=dict)

    def full_tenants(self) -> set[str]:
        return {tenant for tenant, count in self.held.items() if count >= self.per_tenant}


NO_WEBHOOK_SLOTS = WebhookSlots()


@dataclass(frozen=True)
class NodeClaim:
    """The claiming node: its id, the OCI runtimes its engine has, its labels, and the
    runtime a run gets when its activation names none (the operator's)."""

    node_id: str
    runtimes: frozenset[str]
    labels: dict[str, str]
    default_runtime: str

    def can_run(self, runtime: str | None, selector: dict[str, Any] | None) -> bool:
        """True when this node has the runtime and carries every label of the selector."""
        if (runtime or self.default_runtime) not in self.runtimes:
            return False
        return all(self.labels.get(key) == value for key, value in (selector or {}).items())


def _is_webhook() -> Any:
    """True for an invocation of a webhook version (a delivery, not a container run)."""
    return Invocation.version_id.in_(select(Webhook.version_id))


# The kinds of key a claim limit counts runs by; on PostgreSQL, also the first half of the
# key's advisory lock (``_lock_keys``). CAPS: the rows of tenants' caps in ``_Room.read``.
PLUGIN_KEY, PROJECT_KEY, TENANT_KEY, CAPS = 1, 2, 3, 4
NO_CAP = -1  # a tenant's cap left to the default, in those rows


@dataclass
class _Running:
    """Running invocations by plugin, by project, and by tenant (plugin runs only: a
    tenant's cap leaves its webhook deliveries out), for the keys asked about."""

    by_plugin: dict[str, int] = field(default_factory=dict)
    by_project: dict[str, int] = field(default_factory=dict)
    by_tenant: dict[str, int] = field(default_factory=dict)


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
) -> tuple[_Running, list[tuple[int, str, int]]]:
    """How many runs of each of these keys run now (None: of every key that runs any),
    in one statement with ``more`` selects of the same shape (kind, key, number); returns
    the counts and the rows of ``more``. Each count reads the ``status`` index's running
    rows."""
    parts = [*_count_parts(plugins, projects, tenants), *more]
    counts = _Running()
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


class _Room:
    """What one claim may still take: the node's free slots of each kind and the running
    counts its limits are checked against, updated as it takes invocations. A tenant's cap
    of runs at once counts plugin runs; its webhook deliveries are held to its share of the
    webhook pool instead."""

    def __init__(
        self,
        runs: int,
        webhooks: WebhookSlots,
        limits: ClaimLimits,
        tenant_caps: dict[str, int | None],
        counts: _Running,
    ) -> None:
        self.limits = limits
        self.runs = runs
        self.webhooks = webhooks.free
        self.webhook_share = webhooks.per_tenant
        self.webhooks_held = dict(webhooks.held)
        self.tenant_caps = tenant_caps
        self.counts = counts

    @classmethod
    def read(
        cls, session: Session, runs: int, webhooks: WebhookSlots, limits: ClaimLimits
    ) -> _Room:
        """The room with every tenant's cap and the running counts of every plugin,
        project and tenant, in one statement."""
        caps = select(literal(CAPS), Tenant.id, func.coalesce(Tenant.max_concurrent_runs, NO_CAP))
        counts, rows = _running(session, None, None, None, caps)
        tenant_caps = {
            tenant: limits.per_tenant if cap == NO_CAP else cap for _, tenant, cap in rows
        }
        return cls(runs, webhooks, limits, tenant_caps, counts)

    def cap(self, tenant: str) -> int | None:
        return self.tenant_caps.get(tenant, self.limits.per_tenant)

    def full_plugins(self) -> set[str]:
        return {p for p, n in self.counts.by_plugin.items() if n >= self.limits.per_plugin}

    def full_projects(self) -> set[str]:
        return {p for p, n in self.counts.by_project.items() if n >= self.limits.per_project}

    def full(self) -> bool:
        return self.runs <= 0 and self.webhooks <= 0

    def busy_tenants(self) -> set[str]:
        """Tenants at their cap of runs at once: none of their runs can be taken."""
        return {
            tenant
            for tenant, count in self.counts.by_tenant.items()
            if (cap := self.cap(tenant)) is not None and count >= cap
        }

    def admits(self, invocation: Invocation, webhook: bool) -> bool:
        tenant = invocation.tenant_id
        if webhook:
            held = self.webhooks_held.get(tenant, 0)
            kind_free = self.webhooks > 0 and held < self.webhook_share
        else:
            cap = self.cap(tenant)
            kind_free = self.runs > 0 and (
                cap is None or self.counts.by_tenant.get(tenant, 0) < cap
            )
        return (
            kind_free
            and self.counts.by_plugin.get(invocation.plugin_id, 0) < self.limits.per_plugin
            and self.counts.by_project.get(invocation.project_id, 0) < self.limits.per_project
        )

    def take(self, invocation: Invocation, webhook: bool) -> None:
        tenant = invocation.tenant_id
        if webhook:
            self.webhooks -= 1
            self.webhooks_held[tenant] = self.webhooks_held.get(tenant, 0) + 1
        else:
            self.runs -= 1
            self.counts.by_tenant[tenant] = self.counts.by_tenant.get(tenant, 0) + 1
        for counts, key in (
            (self.counts.by_plugin, invocation.plugin_id),
            (self.counts.by_project, invocation.project_id),
        ):
            counts[key] = counts.get(key, 0) + 1

    def keys(self, picks: list[tuple[Invocation, bool]]) -> set[tuple[int, str]]:
        """The limit keys the picks count against: their plugins and projects, and the
        tenants of plugin runs whose tenant has a cap."""
        keys = set()
        for invocation, webhook in picks:
            keys |= {(PLUGIN_KEY, invocation.plugin_id), (PROJECT_KEY, invocation.project_id)}
            if not webhook and self.cap(invocation.tenant_id) is not None:
                keys.add((TENANT_KEY, invocation.tenant_id))
        return keys


def _claimable(
    room: _Room, webhooks: WebhookSlots, now: datetime, window: int
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
        .options(raiseload(Invocation.gateway_calls))  # not read by a run
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


_Candidate = tuple[Invocation, str | None, str | None, dict[str, Any] | None]


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
    room = _Room.read(session, slots, webhooks, limits)
    if room.full():
        return []
    window = locked_window(slots + webhooks.free) if postgres else CLAIM_WINDOW
    query = _claimable(room, webhooks, now, window)
    if postgres:
        query = query.with_for_update(skip_locked=True, of=Invocation)
    candidates: list[_Candidate] = [tuple(row) for row in session.execute(query).all()]
    if not candidates:
        return []
    picks = _choose(session, room, candidates, node, now - timedelta(seconds=grace_s), grace_s)
    if postgres and picks:
        picks = _confirm(session, room, picks, slots, webhooks, limits)
    for invocation, _ in picks:
        _take(invocation, owner, node.node_id, expires)
        invocation.started_at = now
        invocation.handler_started_at = None
        invocation.stdout_read_bytes = invocation.stderr_read_bytes = 0  # a new container
        invocation.attempt += 1
        invocation.not_before = None
    session.flush()
    return [invocation for invocation, _ in picks]


def _any_due(session: Session, now: datetime) -> bool:
    """Whether any invocation is queued and due (index ``status, queued_at``)."""
    due = select(Invocation.id).where(
        Invocation.status == InvocationStatus.QUEUED,
        or_(Invocation.not_before.is_(None), Invocation.not_before <= now),
    )
    return session.scalar(due.limit(1)) is not None


def _choose(
    session: Session,
    room: _Room,
    candidates: list[_Candidate],
    node: NodeClaim,
    fresh_since: datetime,
    grace_s: float,
) -> list[tuple[Invocation, bool]]:
    """The candidates this node takes, oldest first, within ``room`` (updated as it
    takes), each with whether it is a webhook delivery."""
    warm_elsewhere = _warm_elsewhere(session, node.node_id) if grace_s > 0 else set()
    picks: list[tuple[Invocation, bool]] = []
    blocked: set[str] = set()
    for invocation, hook_version, runtime, selector in candidates:
        if room.full():
            break
        if not node.can_run(runtime, selector):
            continue
        if invocation.version_id in warm_elsewhere and invocation.queued_at > fresh_since:
            continue
        webhook = hook_version is not None
        if invocation.plugin_id in blocked or not room.admits(invocation, webhook):
            blocked.add(invocation.plugin_id)
            continue
        room.take(invocation, webhook)
        picks.append((invocation, webhook))
    return picks


def _confirm(
    session: Session,
    room: _Room,
    picks: list[tuple[Invocation, bool]],
    slots: int,
    webhooks: WebhookSlots,
    limits: ClaimLimits,
) -> list[tuple[Invocation, bool]]:
    """The picks that still fit once their limit keys are locked and counted again (runs
    other claimers took since the first count hold slots now), in order; a plugin whose
    pick no longer fits gets none of its later picks either."""
    keys = room.keys(picks)
    _lock_keys(session, keys)
    counts, _ = _running(
        session,
        {key for kind, key in keys if kind == PLUGIN_KEY},
        {key for kind, key in keys if kind == PROJECT_KEY},
        {key for kind, key in keys if kind == TENANT_KEY},
    )
    locked = _Room(slots, webhooks, limits, room.tenant_caps, counts)
    kept: list[tuple[Invocation, bool]] = []
    blocked: set[str] = set()
    for invocation, webhook in picks:
        if invocation.plugin_id in blocked or not locked.admits(invocation, webhook):
            blocked.add(invocation.plugin_id)
            continue
        locked.take(invocation, webhook)
        kept.append((invocation, webhook))
    return kept


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


def _take(invocation: Invocation, owner: str, node_id: str, expires: datetime) -> None:
    """Make ``owner`` on ``node_id`` the holder, under a new lease generation."""
    invocation.status = InvocationStatus.RUNNING
    invocation.lease_owner = owner
    invocation.node_id = node_id
    invocation.lease_expires_at = expires
    invocation.lease_generation += 1


def fence(session: Session, invocation_id: str, generation: int, *, running: bool = True) -> bool:
    """True when ``generation`` is still the run's current lease generation (and, with
    ``running``, the run still running): a writer calls it first in the transaction of
    its write and writes nothing on False.

    It is a no-op UPDATE of the run's row, so it also locks the row until the commit: a
    takeover (which bumps the generation) waits for the write or the write sees it.
    """
    query = update(Invocation).where(
        Invocation.id == invocation_id, Invocation.lease_generation == generation
    )
    if running:
        query = query.where(Invocation.status == InvocationStatus.RUNNING)
    result = session.execute(query.values(lease_generation=Invocation.lease_generation))
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def renew_leases(session: Session, owner: str, ids: list[str], lease_s: float) -> None:
    """Extend the leases ``owner`` holds on running invocations ``ids`` to ``lease_s``
    after the database's now."""
    if ids:
        session.execute(
            update(Invocation)
            .where(Invocation.id.in_(ids), Invocation.lease_owner == owner)
            .values(lease_expires_at=db_now(lease_s))
        )


def adopt(
    session: Session, invocation_id: str, owner: str, lease_s: float, node_id: str, generation: int
) -> Invocation | None:
    """Take over a running invocation of ``node_id`` whose container outlived its process,
    if its lease is still that container's (``generation``); None otherwise: another node
    has the run now, or it ended, or it was re-queued. The generation stays: the node
    holds the same lease, in a new process."""
    invocation = session.get(Invocation, invocation_id)
    if (
        invocation is None
        or invocation.status != InvocationStatus.RUNNING
        or invocation.node_id != node_id
        or invocation.lease_generation != generation
    ):
        return None
    invocation.lease_owner = owner
    invocation.lease_expires_at = database_now(session) + timedelta(seconds=lease_s)
    return invocation


LEASE_EXPIRED = "lease expired: the executor running it stopped"


def requeue_expired(session: Session, max_attempts: int) -> list[Invocation]:
    """Hand running invocations whose lease expired (their executor died) back to the
    queue; one that used its ``max_attempts``-th attempt ends ``dead`` instead (an event
    that kills every executor running it must not run forever). Returns them all, each
    with its new status; the caller revokes their tokens."""
    expired = list(
        session.scalars(
            select(Invocation).where(
                Invocation.status == InvocationStatus.RUNNING,
                # At or before: mark_lost expires leases at now(), which on PostgreSQL
                # is still now in the same transaction.
                Invocation.lease_expires_at <= db_now(),
            )
        )
    )
    for invocation in expired:
        if invocation.attempt < max_attempts:
            _note_attempt(invocation, LEASE_EXPIRED)
            _release(invocation, status=InvocationStatus.QUEUED)
            continue
        error = f"gave up after {invocation.attempt} attempts: {LEASE_EXPIRED}"
        failure = RunError(RunErrorType.LEASE_EXPIRED, error)
        finish(
            session,
            invocation.id,
            None,
            LEASE_EXPIRED,
            status=InvocationStatus.DEAD,
            error=error,
            failure=failure,
        )
        _release(
            invocation, status=InvocationStatus.DEAD
        )  # the executor that lost it can record nothing
    return expired


def retry_later(
    session: Session,
    invocation_id: str,
    generation: int,
    reason: str,
    delay_s: float,
    kind: AttemptKind | None = None,
) -> bool:
    """Queue a held invocation again, claimable no sooner than ``delay_s`` from now (other
    runs are claimed meanwhile); False if the lease ``generation`` was lost. ``kind`` is
    kept with ``reason`` in the attempt history."""
    if not fence(session, invocation_id, generation):
        return False
    invocation = get_invocation(session, invocation_id)
    _note_attempt(invocation, reason, kind)
    _release(invocation, status=InvocationStatus.QUEUED)
    invocation.not_before = utcnow() + timedelta(seconds=delay_s)
    return True


@dataclass(frozen=True)
class InfraFailing:
    """When a run's infrastructure failures began, and now, both by the store's clock."""

    since: datetime
    now: datetime

    @property
    def for_s(self) -> float:
        return max((self.now - self.since).total_seconds(), 0.0)


def infrastructure_failing(
    session: Session, invocation_id: str, generation: int
) -> InfraFailing | None:
    """Note an infrastructure failure of the held invocation: the first one's time is
    recorded (later ones keep it). None (nothing recorded) when the lease ``generation``
    was lost."""
    if not fence(session, invocation_id, generation):
        return None
    invocation = get_invocation(session, invocation_id)
    now = database_now(session)
    if invocation.infra_failing_since is None:
        invocation.infra_failing_since = now
    return InfraFailing(invocation.infra_failing_since, now)


def plugin_failures(invocation: Invocation) -> int:
    """How many of the invocation's recorded attempts ended in a plugin failure."""
    return sum(entry.get("kind") == AttemptKind.PLUGIN for entry in invocation.attempts)


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Invocation.status, func.count()).group_by(Invocation.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def oldest_queued_at(session: Session) -> datetime | None:
    """When the longest-waiting queued invocation was queued (index ``status, queued_at``)."""
    return session.scalar(
        select(func.min(Invocation.queued_at)).where(Invocation.status == InvocationStatus.QUEUED)
    )


def replay(
    session: Session, invocation_id: str, version_id: str, version_number: int
) -> Invocation:
    """A new queued invocation of a finished one's event, linked to it."""
    original = get_invocation(session, invocation_id)
    if original.status not in TERMINAL_STATUSES:
        raise Conflict(
            f"invocation {invocation_id} is {original.status}: only a finished invocation "
            "can be replayed; wait for it to end"
        )
    copy = Invocation(
        tenant_id=original.tenant_id,
        event_id=original.event_id,
        plugin_id=original.plugin_id,
        version_id=version_id,
        plugin_name=original.plugin_name,
        version_number=version_number,
        project_id=original.project_id,
        event_type=original.event_type,
        asset_id=original.asset_id,
        max_retries=original.max_retries,
        replay_of=original.id,
    )
    session.add(copy)
    session.flush()
    session.refresh(copy)  # defaults the database filled in: readable after the session ends
    return copy


def plugin_deleted(session: Session, plugin: Plugin) -> None:
    """Keep the runs of a plugin being deleted, marked as such; cancel those still queued
    (their version goes with the plugin). Running ones end as they would have."""
    now = utcnow()
    runs = update(Invocation).where(Invocation.plugin_id == plugin.id)
    error = f"canceled: the plugin {plugin.name!r} was deleted before this run started"
    failure = RunError.classified(InvocationStatus.CANCELED, error)
    session.execute(
        runs.where(Invocation.status == InvocationStatus.QUEUED).values(
            status=InvocationStatus.CANCELED,
            finished_at=now,
            error=error,
            error_type=failure.type,
            error_message=failure.message,
        )
    )
    session.execute(runs.values(plugin_deleted_at=now))


def _note_attempt(invocation: Invocation, reason: str, kind: AttemptKind | None = None) -> None:
    entry: dict[str, Any] = {"attempt": invocation.attempt, "reason": reason}
    entry["at"] = utcnow().isoformat()
    if kind is not None:
        entry["kind"] = kind.value
    invocation.attempts = [*invocation.attempts, entry]


def _release(invocation: Invocation, *, status: InvocationStatus) -> None:
    """No holder any more: a new generation, so the last holder's writes are refused."""
    invocation.status = status
    invocation.lease_owner = None
    invocation.lease_expires_at = None
    invocation.lease_generation += 1


def note_output_read(
    session: Session, invocation_id: str, generation: int, *, stdout: int, stderr: int
) -> None:
    """Record how much of the container's output is stored (with those log records)."""
    session.execute(
        update(Invocation)
        .where(Invocation.id == invocation_id, Invocation.lease_generation == generation)
        .values(stdout_read_bytes=stdout, stderr_read_bytes=stderr)
    )


def mark_handler_started(
    session: Session, invocation_id: str, generation: int, at: datetime
) -> None:
    session.execute(
        update(Invocation)
        .where(Invocation.id == invocation_id, Invocation.lease_generation == generation)
        .values(handler_started_at=at)
    )


def finish(
    session: Session,
    invocation_id: str,
    generation: int | None,
    reason: str | None = None,
    *,
    status: InvocationStatus,
    exit_code: int | None = None,
    error: str | None = None,
    output: RunOutput | None = None,
    kind: AttemptKind | None = None,
    failure: RunError | None = None,
    at: datetime | None = None,
) -> bool:
    """Record the terminal ``status`` of a running invocation held under lease
    ``generation`` (None: whoever holds it, for the store's own expiry), ended ``at``
    (default: now).

    ``reason`` (and its ``kind``) is kept in the attempt history; ``output`` (None: not
    known) how much log the run wrote; ``failure`` the summary of a run that did not
    succeed (default: classified from ``status`` and ``error``). Returns False (and
    changes nothing) when the lease was lost to another holder or the run ended already,
    so a result is never recorded twice.
    """
    if generation is not None and not fence(session, invocation_id, generation):
        return False
    invocation = get_invocation(session, invocation_id)
    now = at or utcnow()
    invocation.status = status
    invocation.exit_code = exit_code
    invocation.error = error
    _note_failure(invocation, status, failure or RunError.classified(status, error))
    if output is not None:
        invocation.log_bytes = output.log_bytes
        invocation.truncated = output.truncated
    if reason is not None:
        _note_attempt(invocation, reason, kind)
    invocation.lease_expires_at = None  # the owner stays: it tells which executor ran it
    invocation.finished_at = now
    if invocation.started_at is not None:
        invocation.duration_ms = int((now - invocation.started_at).total_seconds() * 1000)
    log_store.announce(session)  # followers of the run end their streams
    return True


def _note_failure(invocation: Invocation, status: InvocationStatus, failure: RunError) -> None:
    """Keep a failed run's summary, bounded whoever built it; a success has none."""
    if status == InvocationStatus.SUCCEEDED:
        invocation.error_type = invocation.error_message = invocation.error_location = None
        return
    kept = RunError.bounded(failure.type, failure.message, failure.location)
    invocation.error_type, invocation.error_message = kept.type, kept.message
    invocation.error_location = kept.location


def find_invocation(session: Session, invocation_id: str) -> Invocation | None:
    """The invocation, or None when there is none."""
    return session.get(Invocation, invocation_id)


def find_event(session: Session, event_id: str) -> Event | None:
    """The stored event, or None when there is none."""
    return session.get(Event, event_id)


@dataclass(frozen=True)
class RunInputs:
    """What an attempt of ``invocation`` runs: its event, version and plugin (any may be
    gone: a purged event, a deleted plugin), and the OCI runtime its activation needs
    (None: the operator's)."""

    event: Event | None
    version: PluginVersion | None
    plugin: Plugin | None
    runtime: str | None = None


def run_inputs(session: Session, invocation: Invocation) -> RunInputs:
    runtime = session.scalar(
        select(Activation.runtime).where(
            Activation.plugin_id == invocation.plugin_id,
            Activation.project_id == invocation.project_id,
        )
    )
    return RunInputs(
        session.get(Event, invocation.event_id),
        session.get(PluginVersion, invocation.version_id),
        session.get(Plugin, invocation.plugin_id),
        runtime,
    )


def begin_hand_off(
    session: Session, invocation_id: str, generation: int, deadline: datetime, cold_start: bool
) -> bool:
    """Record the deadline of the attempt handed off now, and how its container started;
    False (nothing recorded) when the lease ``generation`` was lost."""
    # One conditional UPDATE: the fence and the write (this is on every start's path).
    result = session.execute(
        update(Invocation)
        .where(
            Invocation.id == invocation_id,
            Invocation.lease_generation == generation,
            Invocation.status == InvocationStatus.RUNNING,
        )
        .values(deadline_at=deadline, cold_start=cold_start)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def add_invocation(session: Session, invocation: Invocation) -> Invocation:
    """Store a new invocation; its id is set on return."""
    session.add(invocation)
    session.flush()
    return invocation
