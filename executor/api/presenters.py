"""Table rows to wire schemas."""

from __future__ import annotations

from datetime import datetime

from executor.schemas import (
    ActivationPublic,
    AttemptPublic,
    AuditEntryPublic,
    GatewayCallPublic,
    InvocationPublic,
    KeyPublic,
    LogMetadata,
    LogRecordPublic,
    PluginPublic,
    PluginSummary,
    TenantPublic,
    VersionPublic,
)
from executor.service.catalog import activation_events
from executor.settings import Settings
from executor.statuses import BuildStatus
from executor.store import plugins as plugin_store
from executor.store.tables import (
    Activation,
    ApiKey,
    AuditEntry,
    Invocation,
    LogRecord,
    Plugin,
    PluginVersion,
    Tenant,
)
from executor.tenancy.quotas import quotas_for

__all__ = [
    "activation_public",
    "audit_public",
    "invocation_public",
    "key_public",
    "log_public",
    "plugin_public",
    "plugin_summary",
    "tenant_public",
    "version_public",
]


def version_public(version: PluginVersion, current: PluginVersion | None = None) -> VersionPublic:
    return VersionPublic(
        version=version.number,
        status=BuildStatus(version.status),
        handlers=list(version.handlers),
        requirements=version.requirements,
        source_sha256=version.source_sha256,
        image_id=version.image_id,
        image_removed=version.image_removed_at is not None,
        current=current is not None and current.id == version.id,
        pip_freeze=version.pip_freeze,
        error=version.error,
        created_at=version.created_at,
        finished_at=version.finished_at,
    )


def plugin_summary(plugin: Plugin, projects: list[str]) -> PluginSummary:
    latest = plugin.versions[-1] if plugin.versions else None
    return PluginSummary(
        name=plugin.name,
        created_at=plugin.created_at,
        latest_version=latest.number if latest else None,
        status=latest.status if latest else None,
        projects=projects,
    )


def plugin_public(plugin: Plugin, projects: list[str]) -> PluginPublic:
    current = plugin_store.current_version(plugin)
    return PluginPublic(
        **plugin_summary(plugin, projects).model_dump(),
        current_version=current.number if current else None,
        versions=[version_public(v, current) for v in plugin.versions],
    )


def activation_public(activation: Activation) -> ActivationPublic:
    version = plugin_store.activation_version(activation)
    return ActivationPublic(
        plugin=activation.plugin.name,
        project_id=activation.project_id,
        events=activation_events(activation, version),
        events_default=activation.event_matcher is None,
        max_retries=activation.max_retries,
        pinned_version=activation.version_number,
        runs_version=version.number if version else None,
        created_at=activation.created_at,
    )


def _millis_between(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else int((end - start).total_seconds() * 1000)


def invocation_public(invocation: Invocation) -> InvocationPublic:
    return InvocationPublic(
        id=invocation.id,
        plugin=invocation.plugin_name,
        version=invocation.version_number,
        image_id=invocation.image_id,
        project_id=invocation.project_id,
        event_id=invocation.event_id,
        event_type=invocation.event_type,
        asset_id=invocation.asset_id,
        status=invocation.status,
        exit_code=invocation.exit_code,
        attempt=invocation.attempt,
        queued_at=invocation.queued_at,
        started_at=invocation.started_at,
        handler_started_at=invocation.handler_started_at,
        finished_at=invocation.finished_at,
        duration_ms=invocation.duration_ms,
        start_latency_ms=_millis_between(invocation.queued_at, invocation.handler_started_at),
        start="cold" if invocation.cold_start else "warm",
        log_bytes=invocation.log_bytes,
        truncated=invocation.truncated,
        error=invocation.error,
        attempts=[AttemptPublic(**a) for a in invocation.attempts],
        replay_of=invocation.replay_of,
        executor=invocation.lease_owner,
        plugin_deleted_at=invocation.plugin_deleted_at,
        gateway_calls=[
            GatewayCallPublic(
                at=call.created_at,
                method=call.method,
                path=call.path,
                status=call.status,
                request_bytes=call.request_bytes,
                response_bytes=call.response_bytes,
                duration_ms=call.duration_ms,
                error=call.error,
            )
            for call in invocation.gateway_calls
        ],
    )


def log_public(record: LogRecord) -> LogRecordPublic:
    return LogRecordPublic(
        id=record.id,
        created_at=record.created_at,
        plugin_name=record.plugin_name,
        project_id=record.project_id,
        run_id=record.run_id,
        log_type=record.log_type,
        content=record.content,
        metadata=LogMetadata(
            asset_id=record.asset_id,
            label_id=record.label_id,
            assetId=record.asset_id,
            labelId=record.label_id,
        ),
        stream=record.stream,
        seq=record.seq,
        continues=record.continues,
        createdAt=record.created_at,
        logType=record.log_type,
        pluginName=record.plugin_name,
        projectId=record.project_id,
        runId=record.run_id,
    )


def tenant_public(tenant: Tenant, settings: Settings) -> TenantPublic:
    quotas = quotas_for(tenant, settings)
    return TenantPublic(
        name=tenant.id,
        created_at=tenant.created_at,
        max_plugins=quotas.max_plugins,
        max_versions=quotas.max_versions,
        max_concurrent_runs=quotas.max_concurrent_runs,
    )


def key_public(key: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=key.id,
        tenant=key.tenant_id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


def audit_public(entry: AuditEntry) -> AuditEntryPublic:
    return AuditEntryPublic(
        id=entry.id,
        at=entry.at,
        tenant=entry.tenant_id,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
    )
