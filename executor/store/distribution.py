"""A pushed version's image, held by the nodes before the version becomes ACTIVE.

With a registry, a build pushes its image, records the digest while the version is still
DEPLOYING (``pushed``) and announces it (``VERSION_CHANNEL`` on PostgreSQL, delivered at
the commit). Each node's pre-puller pulls it and records that it holds it (``held_by``).
The build waits for the live nodes it knew at the push (``live_nodes``) to hold it, within
a bound, then makes the version ACTIVE: its first run on a node starts it, it does not
pull it on the event's path. A node that did not pull it in time pulls it at its first run.

Only what a node's own engine reported is recorded: a node records itself, never another.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from executor.statuses import BuildStatus, NodeState
from executor.store.clock import db_now
from executor.store.tables import Node, PluginVersion, VersionPull
from executor.store.versions import get_version

__all__ = [
    "VERSION_CHANNEL",
    "distributing",
    "held_by",
    "live_nodes",
    "pushed",
    "record_held",
]

# Announced (PostgreSQL ``NOTIFY``, at the commit) when a version's image was pushed and
# awaits the nodes: their pre-pullers pull it at once, not at their next check.
VERSION_CHANNEL = "executor_versions"
_ANNOUNCE = text(f"SELECT pg_notify('{VERSION_CHANNEL}', :version_id)")


def pushed(session: Session, version_id: str, digest: str) -> None:
    """Record the pushed digest of a version still DEPLOYING, and announce it."""
    get_version(session, version_id).image_digest = digest
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ANNOUNCE, {"version_id": version_id})


def distributing(session: Session, not_held_by: str | None = None) -> list[PluginVersion]:
    """Versions pushed and not ACTIVE yet: their builds wait for the nodes to hold them.
    ``not_held_by``: only those that node has not recorded holding (what its pre-puller
    still has to do)."""
    query = select(PluginVersion).where(
        PluginVersion.status == BuildStatus.DEPLOYING,
        PluginVersion.image_digest.is_not(None),
    )
    if not_held_by is not None:
        held = select(VersionPull.version_id).where(VersionPull.node_id == not_held_by)
        query = query.where(PluginVersion.id.not_in(held))
    return list(session.scalars(query))


def record_held(session: Session, version_id: str, node_id: str) -> None:
    """Node ``node_id`` holds the version's image (once; a version gone: nothing)."""
    if session.get(PluginVersion, version_id) is None:
        return
    if session.get(VersionPull, (version_id, node_id)) is None:
        session.add(VersionPull(version_id=version_id, node_id=node_id))
        session.flush()


def held_by(session: Session, version_id: str) -> set[str]:
    """The nodes that recorded holding the version's image."""
    rows = session.scalars(select(VersionPull.node_id).where(VersionPull.version_id == version_id))
    return set(rows)


def live_nodes(session: Session, stale_after_s: float) -> list[str]:
    """Nodes that take runs (``ready``) and beat within ``stale_after_s`` seconds, by the
    database's clock: the ones a build waits for."""
    return list(
        session.scalars(
            select(Node.id)
            .where(Node.state == NodeState.READY, Node.heartbeat_at >= db_now(-stale_after_s))
            .order_by(Node.id)
        )
    )
