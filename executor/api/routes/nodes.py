"""Nodes: the dispatching processes sharing the store, and draining one."""

from __future__ import annotations

from fastapi import APIRouter

from executor.api.deps import OperatorOnly, ServiceDep, SessionDep
from executor.api.presenters import node_public
from executor.identifiers import NodeId
from executor.schemas import NodePublic
from executor.store import nodes as node_store

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


@router.get("", response_model=list[NodePublic])
def list_nodes(caller: OperatorOnly, session: SessionDep) -> list[NodePublic]:
    """Every node with its state, runtimes, capacity, labels, heartbeat and runs held."""
    running = node_store.running_by_node(session)
    return [node_public(n, running.get(n.id, 0)) for n in node_store.list_nodes(session)]


@router.post("/{node_id}/drain", response_model=NodePublic)
def drain_node(node_id: NodeId, caller: OperatorOnly, service: ServiceDep) -> NodePublic:
    """The node finishes the runs it holds and claims no new ones (until it restarts)."""
    node, running = service.drain_node(caller, node_id)
    return node_public(node, running)
