"""Runtime flavors: the base images a plugin can choose at upload, with their packages."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from executor.api.deps import PluginsRead, ServiceDep
from executor.api.presenters import runtime_public
from executor.schemas.plugins import RuntimePublic

router = APIRouter(prefix="/v1/runtimes", tags=["runtimes"])


@router.get("", response_model=list[RuntimePublic])
async def list_runtimes(_caller: PluginsRead, service: ServiceDep) -> list[RuntimePublic]:
    """Every flavor: its image, whether it is the default, whether the engine has it, and
    the versions of the packages it provides (read from the image's labels)."""
    flavors = await run_in_threadpool(service.uploads.runtimes)
    return [runtime_public(flavor) for flavor in flavors]
