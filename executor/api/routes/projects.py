"""Activations: a plugin on a project, with its event matcher."""

from __future__ import annotations

from fastapi import APIRouter, status

from executor.api.deps import PluginsRead, PluginsWrite, ServiceDep, SessionDep
from executor.identifiers import PluginName, ProjectId
from executor.schemas import ActivationIn, ActivationPublic
from executor.service.catalog import describe_activation
from executor.store import activations as activation_store
from executor.store import tenants as tenant_store

router = APIRouter(prefix="/v1/projects", tags=["activations"])


@router.get("/{project_id}/plugins", response_model=list[ActivationPublic])
def list_project_plugins(
    project_id: ProjectId, caller: PluginsRead, session: SessionDep
) -> list[ActivationPublic]:
    """The plugins active on one of the tenant's projects (the operator: on any project)."""
    if tenant_store.project_tenant(session, project_id) is None and caller.is_operator:
        return []
    tenant_store.owned_project(session, project_id, caller.tenant_id, may_claim=False)
    return [
        describe_activation(a)
        for a in activation_store.list_activations(session, project_id=project_id)
    ]


@router.put("/{project_id}/plugins/{name}", response_model=ActivationPublic)
def activate(
    name: PluginName,
    project_id: ProjectId,
    caller: PluginsWrite,
    service: ServiceDep,
    body: ActivationIn | None = None,
) -> ActivationPublic:
    """Activate a plugin on a project; ``events`` defaults to the plugin's handler types,
    ``version`` pins an ACTIVE version (default: follow the plugin's current version),
    ``max_retries`` retries plugin failures; ``runtime`` and ``node_selector`` say which
    nodes may run it."""
    body = body or ActivationIn()
    return service.catalog.activate(caller, name, project_id, body)


@router.delete("/{project_id}/plugins/{name}", status_code=status.HTTP_204_NO_CONTENT)
def deactivate(
    name: PluginName, project_id: ProjectId, caller: PluginsWrite, service: ServiceDep
) -> None:
    service.catalog.deactivate(caller, name, project_id)
