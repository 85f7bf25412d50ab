"""Plugins: upload (a new version), list, get, delete, build log."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from executor.api.deps import PluginsRead, PluginsWrite, ServiceDep
from executor.api.presenters import plugin_public, plugin_summary
from executor.api.streams import SSE_HEADERS, StreamTiming, build_log_events
from executor.errors import InvalidCursor, UploadTooLarge, checked_identifier
from executor.identifiers import IdKind, PluginName, VersionNumber
from executor.intake.upload import UploadLimits
from executor.run.limits import LimitsPublic, PluginLimits, limits_public
from executor.schemas.plugins import PluginPublic, PluginSummary, RollbackIn, RolledBack
from executor.service import reads
from executor.statuses import RuntimeFlavor

router = APIRouter(prefix="/v1/plugins", tags=["plugins"])


class VersionCreated(BaseModel):
    plugin: str
    version: int
    status: str
    handlers: list[str]
    runtime: RuntimeFlavor
    reused: bool = Field(
        description="True: the same files for the same flavor as this existing version (ACTIVE"
        " or building); no new version was made and nothing is built."
    )


class BuildLog(BaseModel):
    plugin: str
    version: int
    status: str
    error: str | None
    log: str
    pip_freeze: str | None


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=VersionCreated)
async def upload_plugin(
    caller: PluginsWrite,
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="zip, tar.gz, or one .py file")],
    name: Annotated[str | None, Form(description="Plugin name; default: the file's stem")] = None,
    runtime: Annotated[
        str | None,
        Form(
            description="Runtime flavor (GET /v1/runtimes); default: plugin.toml's, else the "
            "operator's"
        ),
    ] = None,
) -> VersionCreated:
    """Upload a plugin: checked statically now, built in the background (status DEPLOYING).

    An unknown ``runtime`` answers 422 ``unknown_runtime`` listing the allowed flavors; a
    requirements.txt when the operator forbids them, 422 ``requirements_forbidden``. The
    archive, its unpacked size or one source file over its limit answers 413
    ``upload_too_large`` (``file``, ``limit``); a check that needs more memory or time than
    its worker has, 422 ``upload_check_limit`` (``file``, ``limit``, ``maximum``); a tenant
    with its share of the check workers busy and a full queue, 429 ``upload_check_busy``.
    The same files for the same runtime as a version ACTIVE or building reuse it
    (``reused``: no new number, no build)."""
    limit = UploadLimits().max_archive_bytes
    data = await file.read(limit + 1)
    filename = file.filename or "upload"
    if len(data) > limit:
        raise UploadTooLarge(
            f"{filename} is larger than {limit} bytes: upload a smaller archive",
            file=filename,
            limit=limit,
        )
    # Checked here too (the catalog checks every caller's) to answer with the stored form.
    default = PurePosixPath(filename).name.split(".")[0]
    plugin_name = checked_identifier(IdKind.PLUGIN, name or default, "name")
    # Waiting for a check worker (the check runs in its process) and a database write: off
    # the event loop.
    version, reused = await run_in_threadpool(
        service.uploads.upload_or_reuse, caller, plugin_name, filename, data, runtime
    )
    return VersionCreated(
        plugin=plugin_name,
        version=version.number,
        status=version.status,
        handlers=list(version.handlers),
        runtime=RuntimeFlavor(version.runtime),
        reused=reused,
    )


@router.get("", response_model=list[PluginSummary])
def list_plugins(caller: PluginsRead, service: ServiceDep) -> list[PluginSummary]:
    return [
        plugin_summary(listed.plugin, listed.project_ids)
        for listed in reads.listed_plugins(service.db, caller)
    ]


@router.get("/{name}", response_model=PluginPublic)
def get_plugin(name: PluginName, caller: PluginsRead, service: ServiceDep) -> PluginPublic:
    listed = reads.listed_plugin(service.db, caller, name)
    return plugin_public(listed.plugin, listed.project_ids)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_plugin(name: PluginName, caller: PluginsWrite, service: ServiceDep) -> None:
    """Delete a plugin, its versions and activations (its past runs' logs stay)."""
    service.catalog.delete(caller, name)


@router.post("/{name}/rollback", response_model=RolledBack)
def rollback(
    name: PluginName, caller: PluginsWrite, service: ServiceDep, body: RollbackIn | None = None
) -> RolledBack:
    """Make a version current: ``{"to": N}`` names any ACTIVE version, older (rollback) or
    newer (roll forward); no body, the ACTIVE version before the current one. 409 if that
    version is not ACTIVE, is current already, or there is none; 404 for a missing version.

    Activations that follow the current version run it from the next event on; pinned
    activations keep their version. The next ACTIVE upload becomes current again, and so
    does rolling forward to the newest ACTIVE version. The answer says how many of the
    version's latest ended runs failed, with a ``warning`` when most did.
    """
    return service.catalog.rollback(caller, name, body.to if body is not None else None)


@router.get("/{name}/versions/{version}/build-log", response_model=BuildLog)
def get_build_log(
    name: PluginName, version: VersionNumber, caller: PluginsRead, service: ServiceDep
) -> BuildLog:
    found = reads.build_log(service.db, caller, name, version)
    return BuildLog(
        plugin=name,
        version=found.version.number,
        status=found.version.status,
        error=found.version.error,
        log=found.log,
        pip_freeze=found.version.pip_freeze,
    )


@router.get(
    "/{name}/versions/{version}/build-log/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream_build_log(
    name: PluginName,
    version: VersionNumber,
    caller: PluginsRead,
    service: ServiceDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this offset")] = None,
) -> StreamingResponse:
    """Server-Sent Events: the build log as it grows (``build`` events with ``text``, ``id``
    = characters sent so far), then one ``end`` event with the final status and error."""
    offset = 0
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise InvalidCursor(
                f"Last-Event-ID {last_event_id[:40]!r} is not a build log offset: send the "
                "'id' of the last event received"
            )
        offset = int(last_event_id)
    version_id = reads.version_id(service.db, caller, name, version)
    timing = StreamTiming(
        service.settings.api.build_log_poll_s, service.settings.api.sse_heartbeat_s
    )
    events = build_log_events(service.db, version_id, offset, timing)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/{name}/limits", response_model=LimitsPublic)
def get_limits(name: PluginName, caller: PluginsRead, service: ServiceDep) -> LimitsPublic:
    """A plugin's sandbox overrides, the limits its runs get, and the operator's maxima."""
    plugin = reads.plugin(service.db, caller, name)
    return limits_public(name, plugin.limits, service.settings.sandbox)


@router.put("/{name}/limits", response_model=LimitsPublic)
def set_limits(
    name: PluginName, limits: PluginLimits, caller: PluginsWrite, service: ServiceDep
) -> LimitsPublic:
    """Replace a plugin's overrides; each may only tighten the operator's profile (else 422
    ``limit_exceeded`` naming the field and the maximum). ``{}`` clears them."""
    plugin = service.catalog.set_limits(caller, name, limits, service.settings.sandbox)
    return limits_public(name, plugin.limits, service.settings.sandbox)
