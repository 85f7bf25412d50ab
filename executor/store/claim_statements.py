"""The statements of a claim (``executor.store.claims``), each built once, at import, with
bound parameters: a claim is on every start's path, and building a statement costs more
Python than executing it. The ones whose shape depends on the claim (the limits that bind
now, the window's size) are built per shape and kept (``candidates``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    Float,
    Integer,
    Select,
    String,
    all_,
    any_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from executor.statuses import InvocationStatus, NodeState
from executor.store.claim_selection import PLUGIN_KEY, PROJECT_KEY, TENANT_KEY
from executor.store.clock import db_now
from executor.store.driver_sql import columns_of
from executor.store.leases import taken
from executor.store.tables import Activation, DispatchLock, Invocation, Node, Tenant, Webhook

__all__ = [
    "ANY_DUE",
    "CAPS",
    "DISPATCH_LOCK",
    "HEARTBEAT",
    "LOCKED_COUNTS",
    "NO_CAP",
    "OPEN_POSTGRES",
    "PLAN_ONCE",
    "ROOM",
    "TAKE",
    "TAKE_FITTING",
    "TAKE_ONE_FITTING",
    "WARM",
    "candidates",
    "candidates_postgres",
    "is_webhook",
]

# CAPS: the rows of tenants' caps among the running counts (the limit keys' kinds are 1-3).
CAPS = 4
NO_CAP = -1  # a tenant's cap left to the default, in those rows


def is_webhook() -> ColumnElement[bool]:
    """True for an invocation of a webhook version (a delivery, not a container run)."""
    return Invocation.version_id.in_(select(Webhook.version_id))


def _due() -> ColumnElement[bool]:
    """Queued, and due at the bound ``now`` (index ``status, queued_at, id``)."""
    return (Invocation.status == InvocationStatus.QUEUED) & or_(
        Invocation.not_before.is_(None), Invocation.not_before <= bindparam("now")
    )


def _counts(kind: int, column: Any, *where: ColumnElement[bool]) -> Select[Any]:
    """Running invocations per value of ``column``, as (kind, key, number) rows."""
    return (
        select(literal(kind).label("kind"), column.label("key"), func.count().label("number"))
        .where(Invocation.status == InvocationStatus.RUNNING, *where)
        .group_by(column)
    )


def _room() -> Any:
    """Every running count (per plugin, project, and tenant for plugin runs only: a
    tenant's cap leaves its webhook deliveries out) and every tenant's cap, in one
    statement of (kind, key, number) rows."""
    cap = func.coalesce(Tenant.max_concurrent_runs, NO_CAP)
    return union_all(
        _counts(PLUGIN_KEY, Invocation.plugin_id),
        _counts(PROJECT_KEY, Invocation.project_id),
        _counts(TENANT_KEY, Invocation.tenant_id, ~is_webhook()),
        select(literal(CAPS).label("kind"), Tenant.id.label("key"), cap.label("number")),
    )


ROOM = _room()

ANY_DUE = select(Invocation.id).where(_due()).limit(1)

DISPATCH_LOCK = (
    update(DispatchLock)
    .where(DispatchLock.id == 1)
    .values(owner=bindparam("owner"), claimed_at=bindparam("now"))
)

# The node's heartbeat renewed if it may claim: ``ready`` (registered, not drained, not
# marked lost), and its heartbeat no older than the bound ``stale_after`` (minus the lease,
# in seconds) by the database's clock. Its RETURNING is the database's now. A node cut off
# from the store for longer (the database was down, the process paused) may be marked lost
# any moment, and what it claimed re-run elsewhere: it heartbeats first. The update locks
# the node's row until the commit: a concurrent ``mark_lost`` (which updates the row too)
# either committed first, and this matches nothing, or waits and then finds the heartbeat
# renewed. So what a node claims is its own for at least the lease. The state is read
# here, so a drain holds from the next claim.
HEARTBEAT = (
    update(Node)
    .where(
        Node.id == bindparam("node"),
        Node.state == NodeState.READY,
        Node.heartbeat_at >= db_now(bindparam("stale_after", type_=Float())),
    )
    .values(heartbeat_at=db_now())
    .returning(Node.heartbeat_at)
)


WARM = select(Node.id, Node.warm).where(Node.state == NodeState.READY)


def _array(name: str, item: Any) -> Any:
    return bindparam(name, type_=ARRAY(item))


# The running counts of the bound (kinds, keys): after ``claim_fits`` (migration 0027)
# locked them, in a statement of its own, so counted with a snapshot taken after.
LOCKED_COUNTS = select(text("kind, key, number")).select_from(
    func.running_of_keys(_array("kinds", Integer()), _array("keys", String()))
)


def _take(chosen: ColumnElement[bool]) -> Any:
    """The ``chosen`` runs (locked by the claim), if still queued, taken under new leases."""
    return (
        update(Invocation)
        .where(chosen, Invocation.status == InvocationStatus.QUEUED)
        .values(
            **taken(bindparam("taker"), bindparam("on_node"), bindparam("expiry")),
            started_at=bindparam("now"),
            handler_started_at=None,
            stdout_read_bytes=0,  # a new container
            stderr_read_bytes=0,
            attempt=Invocation.attempt + 1,
            not_before=None,
        )
    )


# SQLite: the bound ``ids`` taken, in one statement that gives them back as rows of the table.
TAKE = (
    _take(Invocation.id.in_(bindparam("ids", expanding=True)))
    .returning(Invocation)
    .execution_options(synchronize_session=False, populate_existing=True)
)

# On PostgreSQL, the bound ``ids`` (one array) taken only if every limit key of the runs
# fits (``claim_fits``, which takes the keys' locks and counts after them: migration 0027):
# the keys are held from their count to the commit with no round trip to the claimer
# between. No row when they do not all fit; the locks are held then. It returns the runs'
# columns (``driver_sql``: run on the driver's cursor).
# An uncorrelated subquery: PostgreSQL evaluates it once per statement (an InitPlan).
_FITS = select(
    func.claim_fits(
        _array("kinds", Integer()),
        _array("keys", String()),
        _array("adds", Integer()),
        _array("caps", Integer()),
    )
).scalar_subquery()


def _take_fitting(chosen: ColumnElement[bool]) -> Any:
    return _take(chosen).where(_FITS).returning(*columns_of(Invocation, Invocation.__table__.c))


TAKE_FITTING = _take_fitting(Invocation.id == any_(_array("ids", String())))
# One run, the bound ``id``: a statement whose best plan does not depend on its parameters
# (the run found by its primary key, each of its inputs by theirs), so the server plans it
# once per connection (``PLAN_ONCE``).
TAKE_ONE_FITTING = _take_fitting(Invocation.id == bindparam("id", type_=String()))

# Set by the candidates' statement for the rest of the claim's transaction: a prepared
# statement that follows (``TAKE_ONE_FITTING``) keeps its generic plan rather than being
# planned again for its parameters at each execution (0.5 ms of the server's time per start;
# see ``executor.store.driver_sql``). Statements whose plan depends on their parameters (the
# candidates: which plugins are full, whether a run slot is free) are planned before it.
PLAN_ONCE = func.set_config("plan_cache_mode", "force_generic_plan", True)


def _runnable_here() -> ColumnElement[bool]:
    """The run's activation asks for a runtime the claiming node has (the bound
    ``node_runtimes``; none named: the bound ``node_default_runtime``) and only labels it
    carries (its node selector contained in the bound ``node_labels``, as JSONB; no
    selector: any node), as ``NodeClaim.can_run`` says: ``claim_runs_here`` (migration
    0028), a function so that the planner reads the queue's index in order instead of
    sorting the queue."""
    return func.claim_runs_here(
        Activation.runtime,
        Activation.node_selector,
        bindparam("node_default_runtime", type_=String()),
        _array("node_runtimes", String()),
        bindparam("node_labels", type_=JSONB),
        type_=Boolean(),
    )


def _not_left_for_warm() -> ColumnElement[bool]:
    """Not a run queued after the bound ``fresh_since`` of a version another node holds
    warm (the bound ``warm``): warm-aware placement leaves it to that node."""
    fresh_elsewhere = (Invocation.version_id == any_(_array("warm", String()))) & (
        Invocation.queued_at > bindparam("fresh_since")
    )
    return ~fresh_elsewhere


def _activation_of_run() -> ColumnElement[bool]:
    """The invocation's activation (outer-joined: a webhook delivery has none)."""
    return (Activation.plugin_id == Invocation.plugin_id) & (
        Activation.project_id == Invocation.project_id
    )


def _due_here() -> Select[Any]:
    """A run due at the bound ``now`` that the claiming node may run (``_runnable_here``).

    A node that may run none of the queue (it is all for other nodes' labels or runtimes)
    neither heartbeats nor locks: its claim writes nothing, like an idle poll, so its
    commit does not wait for the log's flush. Every node hears every queued run's
    notification, and each such write delayed the claim of the node the run was for
    (about 1 ms of a worker's warm start with one other worker). The parameters are not
    named as the nodes' columns: in the heartbeat's UPDATE, a parameter named as a column
    would set it."""
    return (
        select(Invocation.id)
        .outerjoin(Activation, _activation_of_run())
        .where(_due(), _runnable_here())
        .limit(1)
    )


def _open_postgres() -> Select[Any]:
    beat = HEARTBEAT.where(exists(_due_here())).cte("beat")
    room = ROOM.subquery("room")
    # The ready nodes' warm sets ({node id: {version id: count}}), for warm-aware placement:
    # a column computed once for the statement, where it was a round trip of its own on
    # every claim that takes runs.
    warm = WARM.subquery("ready")
    warm_sets = select(func.json_object_agg(warm.c.id, warm.c.warm)).scalar_subquery()
    return select(
        beat.c.heartbeat_at,
        room.c.kind,
        room.c.key,
        room.c.number,
        warm_sets.label("warm"),
    ).select_from(beat.outerjoin(room, true()))


# On PostgreSQL, one statement: the heartbeat renewed only if a run this node may run is
# due (an idle poll writes nothing), with the room's rows beside it and the ready nodes'
# warm sets on each; no row when there is nothing to claim.
OPEN_POSTGRES = _open_postgres()


@lru_cache(maxsize=256)
def candidates(window: int, locked: bool) -> Select[Any]:
    """Queued invocations due at ``now``, oldest first, ``window`` of them (``locked``:
    locked with ``FOR UPDATE SKIP LOCKED``, on PostgreSQL). Each row is a ``Candidate``'s
    fields: the run's keys, its webhook version's id (None: a plugin run) and its
    activation's runtime and node selector, joined in. Columns, not rows of the table: a
    claim loads only the invocations it takes. ``executor.store.claims`` narrows it to the
    limits that bind.

    Locked, it holds only runs the claiming node would take (``_runnable_here``,
    ``_not_left_for_warm``): a run it locked and left (another node's labels or runtime,
    or one left to a warm node) was skipped by the node it was for, which then found it
    only at its next poll (200 ms to 1 s on a worker's warm start of 25 ms); and runs for
    other nodes do not fill its window."""
    query = (
        select(
            Invocation.id,
            Invocation.plugin_id,
            Invocation.project_id,
            Invocation.tenant_id,
            Invocation.version_id,
            Invocation.queued_at,
            Webhook.version_id,
            Activation.runtime,
            Activation.node_selector,
        )
        .outerjoin(Webhook, Webhook.version_id == Invocation.version_id)
        .outerjoin(Activation, _activation_of_run())
        .where(_due())
        .order_by(Invocation.queued_at, Invocation.id)
        .limit(window)
    )
    if not locked:
        return query
    query = query.where(_runnable_here(), _not_left_for_warm())
    return query.with_for_update(skip_locked=True, of=Invocation)


@lru_cache(maxsize=64)
def candidates_postgres(window: int) -> Select[Any]:
    """``candidates(window, locked=True)`` with what the limits leave out bound as
    parameters rather than written into the statement (``executor.store.claims``'
    ``_claimable`` on SQLite): one statement per window, compiled once and prepared by the
    server, whatever binds now. The bound ``busy_tenants`` (at their cap: none of their
    plugin runs), ``full_plugins`` and ``full_projects`` (at their limit), ``runs_open``
    (a run slot is free), ``webhooks_open`` (a webhook slot is) and
    ``full_webhook_tenants`` (at their share of the webhook pool: none of their
    deliveries). It sets ``PLAN_ONCE``."""
    webhook = is_webhook()
    return candidates(window, True).where(
        # An uncorrelated subquery, evaluated once for the statement: the scan is as
        # planned.
        select(PLAN_ONCE).scalar_subquery().is_not(None),
        webhook | (Invocation.tenant_id != all_(_array("busy_tenants", String()))),
        Invocation.plugin_id != all_(_array("full_plugins", String())),
        Invocation.project_id != all_(_array("full_projects", String())),
        bindparam("runs_open", type_=Boolean()) | webhook,
        ~webhook
        | (
            bindparam("webhooks_open", type_=Boolean())
            & (Invocation.tenant_id != all_(_array("full_webhook_tenants", String())))
        ),
    )
