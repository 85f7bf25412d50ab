"""Invocation records."""

from __future__ import annotations

from fastapi import APIRouter, Query

from executor.api.deps import PluginsRead, PluginsWrite, ServiceDep, SessionDep
from executor.api.presenters import invocation_public
from executor.bounds import MAX_INT64
from executor.identifiers import InvocationId, PluginName, ProjectId
from executor.schemas import InvocationPublic
from executor.store import queries as query_store

router = APIRouter(prefix="/v1/invocations", tags=["invocations"])


@router.get("", response_model=list[InvocationPublic])
def list_invocations(
    caller: PluginsRead,
    session: SessionDep,
    plugin_name: PluginName | None = None,
    project_id: ProjectId | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    skip: int = Query(0, ge=0, le=MAX_INT64),
) -> list[InvocationPublic]:
    """Newest first. ``plugin_name`` matches every run recorded under the name, those of
    a deleted plugin of that name included (``plugin_deleted_at`` set)."""
    rows = query_store.list_invocations(
        session,
        tenant_id=caller.tenant_id,
        plugin_name=plugin_name,
        project_id=project_id,
        status=status,
        limit=limit,
        skip=skip,
    )
    return [invocation_public(r) for r in rows]


@router.get("/{invocation_id}", response_model=InvocationPublic)
def get_invocation(
    invocation_id: InvocationId, caller: PluginsRead, session: SessionDep
) -> InvocationPublic:
    return invocation_public(query_store.get_invocation(session, invocation_id, caller.tenant_id))


@router.post("/{invocation_id}/replay", status_code=202, response_model=InvocationPublic)
def replay_invocation(
    invocation_id: InvocationId, caller: PluginsWrite, service: ServiceDep
) -> InvocationPublic:
    """Run a finished invocation's event again, as a new invocation linked to the first.

    It runs the plugin's current ACTIVE version (the original's if none is ACTIVE now);
    409 if the plugin was deleted (a new plugin of the same name is another plugin).
    """
    return invocation_public(service.replay(caller, invocation_id))
