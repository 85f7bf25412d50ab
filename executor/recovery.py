"""Start-up reconciliation of the containers a previous executor process left behind."""

from __future__ import annotations

import logging

from executor.engine import INVOCATION_LABEL, Engine
from executor.errors import SandboxError
from executor.store import invocations as invocation_store
from executor.store.db import Database
from executor.store.tables import Invocation

__all__ = ["reconcile"]

log = logging.getLogger(__name__)


def reconcile(
    db: Database, engine: Engine, owner: str, lease_s: float
) -> list[tuple[Invocation, str, bool]]:
    """Adopt the containers of still-running invocations; remove every other leftover.

    Returns ``(invocation, container id, container still running)`` for each adopted one:
    the caller follows it to its end (or reads how it ended) and records the result.
    Invocations whose container is gone are left to lease expiry, which re-queues them.
    """
    adopted: list[tuple[Invocation, str, bool]] = []
    for container in engine.managed_containers():
        container_id = str(container["Id"])
        labels = container.get("Labels") or {}
        invocation_id = labels.get(INVOCATION_LABEL) if isinstance(labels, dict) else None
        invocation = None
        if invocation_id:
            with db.session() as session:
                invocation = invocation_store.adopt(session, str(invocation_id), owner, lease_s)
        if invocation is None:
            log.info("removing leftover container %s", container_id[:12])
            try:
                engine.remove_container(container_id)
            except SandboxError as exc:  # start-up must not fail on one stubborn container
                log.warning("could not remove container %s: %s", container_id[:12], exc)
            continue
        adopted.append((invocation, container_id, container.get("State") == "running"))
    return adopted
