"""Invocation records."""

from __future__ import annotations

from fastapi import APIRouter, Query

from executor.api.deps import PluginsRead, PluginsWrite, ServiceDep
from executor.api.presenters import invocation_public
from executor.bounds import MAX_INT64
from executor.identifiers import InvocationId, PluginName, ProjectId
from executor.schemas.invocations import InvocationPublic
from executor.service import run_reads

router = APIRouter(prefix="/v1/invocations", tags=["invocations"])


@router.get("", response_model=list[InvocationPublic])
def list_invocations(
    caller: PluginsRead,
    service: ServiceDep,
    plugin_name: PluginName | None = None,
    project_id: ProjectId | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    skip: int = Query(0, ge=0, le=MAX_INT64),
) -> list[InvocationPublic]:
    """Newest first. ``plugin_name`` matches every run recorded under the name, those of
    a deleted plugin of that name included (``plugin_deleted_at`` set)."""
    where = run_reads.InvocationFilter(plugin_name, project_id, status)
    rows = run_reads.invocations(service.db, caller, where, limit, skip)
    return [invocation_public(r) for r in rows]


@router.get("/{invocation_id}", response_model=InvocationPublic)
def get_invocation(
    invocation_id: InvocationId, caller: PluginsRead, service: ServiceDep
) -> InvocationPublic:
    return invocation_public(run_reads.invocation(service.db, caller, invocation_id))


@router.post("/{invocation_id}/replay", status_code=202, response_model=InvocationPublic)
def replay_invocation(
    invocation_id: InvocationId, caller: PluginsWrite, service: ServiceDep
) -> InvocationPublic:
    """Run a finished invocation's event again, as a new invocation linked to the first.

    It runs the plugin's current ACTIVE version (the original's if none is ACTIVE now);
    409 if the plugin was deleted (a new plugin of the same name is another plugin).
    """
    return invocation_public(service.management.replay(caller, invocation_id))
