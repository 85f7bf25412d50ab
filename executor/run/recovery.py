"""Reconciliation of this node's containers with its invocations.

Only containers labelled with this store and this node are looked at: other nodes on the
same engine keep theirs. At start a node adopts the containers of invocations still
``running`` on it under the lease generation the container was started with (the process
before it died), and removes every other leftover of its own, warm-pool containers
included; while it runs it sweeps now and then for its containers whose attempt no longer
holds its run (it ended, or its lease went to another node; or a removal failed while the
engine was restarting).
"""

from __future__ import annotations

import logging

from executor.engine import INVOCATION_LABEL, LEASE_LABEL, POOL_LABEL, Engine
from executor.errors import SandboxError
from executor.statuses import InvocationStatus
from executor.store import leases as lease_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.tables import Invocation

__all__ = ["reconcile", "sweep_orphans"]

log = logging.getLogger(__name__)


def _invocation_of(container: dict[str, object]) -> str | None:
    labels = container.get("Labels") or {}
    value = labels.get(INVOCATION_LABEL) if isinstance(labels, dict) else None
    return str(value) if value else None


def _generation_of(container: dict[str, object]) -> int | None:
    """The lease generation a run's container was started under (None: not labelled)."""
    labels = container.get("Labels") or {}
    value = labels.get(LEASE_LABEL) if isinstance(labels, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _remove(engine: Engine, container_id: str) -> None:
    log.info("removing leftover container %s", container_id[:12])
    try:
        engine.containers.remove(container_id)
    except SandboxError as exc:  # one stubborn container must not stop the rest
        log.warning("could not remove container %s: %s", container_id[:12], exc)


def reconcile(
    db: Database, engine: Engine, owner: str, lease_s: float, node_id: str
) -> list[tuple[Invocation, str, bool]]:
    """Adopt this node's containers whose attempt still holds its run; remove every other
    leftover of this node.

    Returns ``(invocation, container id, container still running)`` for each adopted one:
    the caller follows it to its end (or reads how it ended) and records the result.
    Invocations whose container is gone are left to lease expiry, which re-queues them.
    """
    adopted: list[tuple[Invocation, str, bool]] = []
    for container in engine.containers.managed():
        container_id = str(container["Id"])
        invocation_id = _invocation_of(container)
        generation = _generation_of(container)
        invocation = None
        if invocation_id and generation is not None:
            with db.session() as session:
                invocation = lease_store.adopt(
                    session, invocation_id, owner, lease_s, node_id, generation
                )
        if invocation is None:
            _remove(engine, container_id)
        else:
            adopted.append((invocation, container_id, container.get("State") == "running"))
    return adopted


def sweep_orphans(db: Database, engine: Engine) -> int:
    """Remove this node's containers whose attempt does not hold its run any more (it
    ended, or the run is held under a newer lease generation); returns how many.

    Running warm-pool containers are left to their pool (they have no invocation; a live
    executor sharing the store may own them); ``reconcile`` removes those a dead process
    left. An exited one (it served its event, or died waiting) is of use to nobody.
    """
    removed = 0
    for container in engine.containers.managed():
        labels = container.get("Labels") or {}
        pooled = isinstance(labels, dict) and POOL_LABEL in labels
        if pooled and container.get("State") == "running":
            continue
        invocation_id = _invocation_of(container)
        with db.session() as session:
            invocation = (
                query_store.find_invocation(session, invocation_id) if invocation_id else None
            )
            running = (
                invocation is not None
                and invocation.status == InvocationStatus.RUNNING
                and invocation.node_id == engine.node_id
                and invocation.lease_generation == _generation_of(container)
            )
        if not running:
            _remove(engine, str(container["Id"]))
            removed += 1
    return removed
