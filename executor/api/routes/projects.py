"""Activations: a plugin on a project, with its event matcher."""

from __future__ import annotations

from fastapi import APIRouter, status

from executor.api.deps import PluginsRead, PluginsWrite, ServiceDep
from executor.identifiers import PluginName, ProjectId
from executor.schemas.plugins import ActivationIn, ActivationPublic
from executor.service import tenant_reads

router = APIRouter(prefix="/v1/projects", tags=["activations"])


@router.get("/{project_id}/plugins", response_model=list[ActivationPublic])
def list_project_plugins(
    project_id: ProjectId, caller: PluginsRead, service: ServiceDep
) -> list[ActivationPublic]:
    """The plugins active on one of the tenant's projects (the operator: on any project)."""
    return tenant_reads.project_activations(service.db, caller, project_id)


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
