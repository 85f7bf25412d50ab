"""Table rows to wire schemas."""

from __future__ import annotations

from datetime import UTC, datetime

from executor.build.flavors import Flavor
from executor.schemas.invocations import (
    AttemptPublic,
    GatewayCallPublic,
    InvocationPublic,
    LogMetadata,
    LogRecordPublic,
)
from executor.schemas.operations import (
    NodePublic,
    PercentilesPublic,
    PluginFailuresPublic,
    QueuePublic,
    StatsBucketPublic,
    StatsPublic,
    VersionStatsPublic,
)
from executor.schemas.plugins import PluginPublic, PluginSummary, RuntimePublic, VersionPublic
from executor.schemas.tenancy import AuditEntryPublic, KeyPublic, TenantPublic
from executor.service.stats import BUCKET_WIDTHS_S
from executor.settings import Settings
from executor.statuses import TERMINAL_STATUSES, BuildStatus, NodeState, RuntimeFlavor
from executor.store import stats as stats_store
from executor.store import versions as version_store
from executor.store.tables import (
    ApiKey,
    AuditEntry,
    Invocation,
    LogRecord,
    Node,
    Plugin,
    PluginVersion,
    Tenant,
)
from executor.tenancy.quotas import quotas_for

__all__ = [
    "audit_public",
    "invocation_public",
    "key_public",
    "log_public",
    "node_public",
    "plugin_public",
    "plugin_summary",
    "runtime_public",
    "stats_public",
    "tenant_public",
    "version_public",
]


def version_public(version: PluginVersion, current: PluginVersion | None = None) -> VersionPublic:
    return VersionPublic(
        version=version.number,
        status=BuildStatus(version.status),
        runtime=RuntimeFlavor(version.runtime),
        handlers=list(version.handlers),
        requirements=version.requirements,
        source_sha256=version.source_sha256,
        image_id=version.image_id,
        image_digest=version.image_digest,
        image_removed=version.image_removed_at is not None,
        current=current is not None and current.id == version.id,
        pip_freeze=version.pip_freeze,
        error=version.error,
        created_at=version.created_at,
        finished_at=version.finished_at,
    )


def runtime_public(flavor: Flavor) -> RuntimePublic:
    return RuntimePublic.model_validate(flavor, from_attributes=True)


def plugin_summary(plugin: Plugin, projects: list[str]) -> PluginSummary:
    latest = plugin.versions[-1] if plugin.versions else None
    current = version_store.current_version(plugin)
    return PluginSummary(
        name=plugin.name,
        kind=plugin.kind,
        created_at=plugin.created_at,
        latest_version=latest.number if latest else None,
        status=latest.status if latest else None,
        current_version=current.number if current else None,
        projects=projects,
    )


def plugin_public(plugin: Plugin, projects: list[str]) -> PluginPublic:
    current = version_store.current_version(plugin)
    return PluginPublic(
        **plugin_summary(plugin, projects).model_dump(),
        versions=[version_public(v, current) for v in plugin.versions],
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
        error_type=invocation.error_type,
        error_message=invocation.error_message,
        error_location=invocation.error_location,
        attempts=[AttemptPublic(**a) for a in invocation.attempts],
        replay_of=invocation.replay_of,
        executor=invocation.lease_owner,
        node=invocation.node_id,
        plugin_deleted_at=invocation.plugin_deleted_at,
        http_status=invocation.http_status,
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
        node_id=record.node_id,
        attempt=record.attempt,
        createdAt=record.created_at,
        logType=record.log_type,
        pluginName=record.plugin_name,
        projectId=record.project_id,
        runId=record.run_id,
    )


def tenant_public(tenant: Tenant, settings: Settings) -> TenantPublic:
    quotas = quotas_for(tenant, settings.tenancy)
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
        last_used_at=key.last_used_at,
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


def _percentiles(figures: stats_store.Percentiles) -> PercentilesPublic:
    return PercentilesPublic(p50=figures.p50, p95=figures.p95)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _bucket_public(bucket: stats_store.BucketStats) -> StatsBucketPublic:
    runs = {status: bucket.runs.get(status, 0) for status in sorted(TERMINAL_STATUSES)}
    return StatsBucketPublic(
        start=datetime.fromtimestamp(bucket.start, UTC),
        runs=runs,
        total=sum(runs.values()),
        duration_ms=_percentiles(bucket.duration_ms),
        start_latency_ms=_percentiles(bucket.start_latency_ms),
        warm=bucket.warm,
        cold=bucket.cold,
        warm_share=_share(bucket.warm, bucket.warm + bucket.cold),
        gateway_calls=bucket.gateway_calls,
        gateway_errors=bucket.gateway_errors,
        gateway_error_share=_share(bucket.gateway_errors, bucket.gateway_calls),
        builds=bucket.builds,
        builds_failed=bucket.builds_failed,
        build_ms=_percentiles(bucket.build_ms),
    )


def stats_public(stats: stats_store.Stats) -> StatsPublic:
    oldest = stats.queue.oldest_queued_at
    age = None if oldest is None else round((datetime.now(UTC) - oldest).total_seconds(), 1)
    return StatsPublic(
        bucket=next(k for k, v in BUCKET_WIDTHS_S.items() if v == stats.asked.width_s),
        since=stats.asked.since,
        until=stats.asked.until,
        buckets=[_bucket_public(b) for b in stats.buckets],
        versions=[
            VersionStatsPublic(
                plugin=v.plugin_name,
                version=v.version,
                runs=v.runs,
                duration_ms=_percentiles(v.duration_ms),
            )
            for v in stats.versions
        ],
        top_failing=[
            PluginFailuresPublic(plugin=f.plugin_name, failures=f.failures, runs=f.runs)
            for f in stats.top_failing
        ],
        queue=QueuePublic(
            depth=stats.queue.depth, oldest_queued_at=oldest, oldest_queued_age_s=age
        ),
    )


def node_public(node: Node, running: int) -> NodePublic:
    return NodePublic(
        id=node.id,
        state=NodeState(node.state),
        engine_version=node.engine_version,
        runtimes=node.runtimes,
        max_concurrent_runs=node.max_concurrent_runs,
        warm_pool_memory_mib=node.warm_pool_memory_mib,
        labels=node.labels,
        warm=node.warm,
        running=running,
        started_at=node.started_at,
        heartbeat_at=node.heartbeat_at,
        clock_skew_s=node.clock_skew_s,
    )
