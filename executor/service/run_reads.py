"""What management clients read of runs: invocations (with their gateway calls) and the
nodes that run them, for one caller. The REST API reads through these, never the store."""

from __future__ import annotations

from dataclasses import dataclass

from executor.store import nodes as node_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.tables import Invocation, Node
from executor.tenancy.access import Caller

__all__ = ["InvocationFilter", "NodeLoad", "invocation", "invocations", "nodes"]


@dataclass(frozen=True)
class InvocationFilter:
    """Which of the caller's invocations a page holds (None: any)."""

    plugin_name: str | None = None
    project_id: str | None = None
    status: str | None = None


def invocations(
    db: Database, caller: Caller, where: InvocationFilter, limit: int, skip: int
) -> list[Invocation]:
    """A page of the caller's tenant's invocations, newest first."""
    with db.session() as session:
        return query_store.list_invocations(
            session,
            tenant_id=caller.tenant_id,
            plugin_name=where.plugin_name,
            project_id=where.project_id,
            status=where.status,
            limit=limit,
            skip=skip,
        )


def invocation(db: Database, caller: Caller, invocation_id: str) -> Invocation:
    """One of the caller's tenant's invocations (NotFound for another tenant's)."""
    with db.session() as session:
        return query_store.get_invocation(session, invocation_id, caller.tenant_id, calls=True)


@dataclass(frozen=True)
class NodeLoad:
    """A node and how many runs it holds now."""

    node: Node
    running: int


def nodes(db: Database) -> list[NodeLoad]:
    """Every node, by id, with the runs it holds."""
    with db.session() as session:
        running = node_store.running_by_node(session)
        return [NodeLoad(n, running.get(n.id, 0)) for n in node_store.list_nodes(session)]
