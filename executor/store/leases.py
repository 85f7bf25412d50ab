"""Who holds a running invocation: the lease a claim or an adoption gives, its renewal,
its release, and the fence every write of a holder passes first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from executor.statuses import InvocationStatus
from executor.store.clock import database_now, db_now
from executor.store.tables import Invocation

__all__ = ["LEASE_EXPIRED", "adopt", "fence", "release", "renew_leases", "taken"]

LEASE_EXPIRED = "lease expired: the executor running it stopped"


def taken(owner: Any, node_id: Any, expires: Any) -> dict[str, Any]:
    """The values of a run's row that make ``owner`` on ``node_id`` its holder until
    ``expires``, under a new lease generation: for the update of a claim (values or bound
    parameters)."""
    return {
        "status": InvocationStatus.RUNNING,
        "lease_owner": owner,
        "node_id": node_id,
        "lease_expires_at": expires,
        "lease_generation": Invocation.lease_generation + 1,
    }


def release(invocation: Invocation, *, status: InvocationStatus) -> None:
    """No holder any more: a new generation, so the last holder's writes are refused."""
    invocation.status = status
    invocation.lease_owner = None
    invocation.lease_expires_at = None
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
