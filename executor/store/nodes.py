"""Queries on nodes: register, heartbeat, drain, and marking the silent ones lost.

A node is one dispatching process on one Docker Engine. It heartbeats while it lives; a
node whose heartbeat is older than the lease TTL is ``lost`` and the leases of its runs
expire at once (``executor.store.outcomes.requeue_expired`` then re-queues them).
Heartbeats and those decisions are stamped by the database's clock (``executor.store.clock``),
never a node's: a node whose clock is off neither looks silent nor finds the others so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from executor.errors import NotFound
from executor.statuses import InvocationStatus, NodeState
from executor.store.clock import db_now
from executor.store.tables import Invocation, Node

__all__ = [
    "NodeInfo",
    "drain",
    "find_node",
    "heartbeat",
    "list_nodes",
    "mark_lost",
    "publish_warm",
    "register",
    "running_by_node",
]


@dataclass(frozen=True)
class NodeInfo:
    """What a node tells the store about itself at start."""

    id: str
    instance: str
    engine_version: str
    runtimes: list[str]
    max_concurrent_runs: int
    warm_pool_memory_mib: int
    labels: dict[str, str] = field(default_factory=dict)


def register(session: Session, info: NodeInfo) -> Node:
    """Record this node as ready (a restarted node takes its row over, drained or not:
    a restart is the operator's way back from a drain)."""
    node = session.get(Node, info.id)
    if node is None:
        node = Node(id=info.id)
        session.add(node)
    now = db_now()
    fields: dict[str, Any] = {
        "instance": info.instance,
        "engine_version": info.engine_version,
        "runtimes": list(info.runtimes),
        "max_concurrent_runs": info.max_concurrent_runs,
        "warm_pool_memory_mib": info.warm_pool_memory_mib,
        "labels": dict(info.labels),
        "warm": {},  # a new process starts with empty pools
        "state": NodeState.READY,
        "started_at": now,
        "heartbeat_at": now,
        "clock_skew_s": None,  # measured at its first heartbeat
    }
    for name, value in fields.items():
        setattr(node, name, value)
    session.flush()
    return node


def heartbeat(
    session: Session,
    node_id: str,
    instance: str,
    revive_as: str = NodeState.READY,
    clock_skew_s: float | None = None,
) -> str | None:
    """Say that ``instance`` of the node lives (at the database's now); its state after
    (None: another process took the id over). A node marked lost that beats again is
    ``revive_as`` (the state it last knew, so a drain survives a pause): its runs are gone
    elsewhere (their lease generations moved on), but it may go on. ``clock_skew_s``: how
    far the node's clock is ahead of the database's (shown, never used to decide)."""
    session.execute(
        update(Node)
        .where(Node.id == node_id, Node.instance == instance)
        .values(heartbeat_at=db_now(), clock_skew_s=clock_skew_s)
    )
    session.execute(
        update(Node)
        .where(Node.id == node_id, Node.instance == instance, Node.state == NodeState.LOST)
        .values(state=revive_as)
    )
    return session.scalar(select(Node.state).where(Node.id == node_id, Node.instance == instance))


def publish_warm(session: Session, node_id: str, instance: str, counts: dict[str, int]) -> None:
    """Record the warm containers the node holds ready now (version id -> count)."""
    session.execute(
        update(Node)
        .where(Node.id == node_id, Node.instance == instance)
        .values(warm={version: count for version, count in counts.items() if count})
    )


def mark_lost(session: Session, ttl_s: float) -> list[str]:
    """Mark lost the nodes silent for longer than ``ttl_s`` (by the database's clock) and
    expire their runs' leases now; returns their ids.

    One conditional UPDATE decides: a claim or heartbeat of the node that commits first
    (they update its row too) makes it fresh, and PostgreSQL re-checks the condition on
    that row before marking it."""
    lost = sorted(
        session.scalars(
            update(Node)
            .where(Node.state != NodeState.LOST, Node.heartbeat_at < db_now(-ttl_s))
            .values(state=NodeState.LOST)
            .returning(Node.id)
            .execution_options(synchronize_session=False)
        )
    )
    if lost:
        session.execute(
            update(Invocation)
            .where(Invocation.node_id.in_(lost), Invocation.status == InvocationStatus.RUNNING)
            .values(lease_expires_at=db_now())
        )
    return lost


def drain(session: Session, node_id: str) -> Node:
    """Make a node take no new runs (it finishes those it holds); NotFound if unknown."""
    node = session.get(Node, node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}: `plugin-executor nodes` lists them")
    if node.state == NodeState.READY:
        node.state = NodeState.DRAINING
    session.flush()
    return node


def find_node(session: Session, node_id: str) -> Node | None:
    return session.get(Node, node_id)


def list_nodes(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.id)))


def running_by_node(session: Session) -> dict[str, int]:
    """Node id -> how many runs it holds now."""
    rows = session.execute(
        select(Invocation.node_id, func.count())
        .where(Invocation.status == InvocationStatus.RUNNING, Invocation.node_id.is_not(None))
        .group_by(Invocation.node_id)
    )
    return {str(node_id): int(count) for node_id, count in rows.all()}


def count_by_state(session: Session) -> dict[str, int]:
    """Nodes by state (ready, draining, lost)."""
    rows = session.execute(select(Node.state, func.count()).group_by(Node.state))
    return {str(state): int(count) for state, count in rows.all()}
