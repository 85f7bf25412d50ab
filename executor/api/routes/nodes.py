"""Nodes: the dispatching processes sharing the store, and draining one."""

from __future__ import annotations

from fastapi import APIRouter

from executor.api.deps import OperatorOnly, ServiceDep
from executor.api.presenters import node_public
from executor.identifiers import NodeId
from executor.schemas.operations import NodePublic
from executor.service import run_reads

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


@router.get("", response_model=list[NodePublic])
def list_nodes(caller: OperatorOnly, service: ServiceDep) -> list[NodePublic]:
    """Every node with its state, runtimes, capacity, labels, heartbeat and runs held."""
    return [node_public(n.node, n.running) for n in run_reads.nodes(service.db)]


@router.post("/{node_id}/drain", response_model=NodePublic)
def drain_node(node_id: NodeId, caller: OperatorOnly, service: ServiceDep) -> NodePublic:
    """The node finishes the runs it holds and claims no new ones (until it restarts)."""
    node, running = service.management.drain_node(caller, node_id)
    return node_public(node, running)
