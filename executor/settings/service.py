"""The settings of the API's requests and streams, of retention, and of tenants' limits."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from executor.settings.base import MIB, Group

__all__ = ["ApiSettings", "RetentionSettings", "TenancySettings"]


class ApiSettings(Group):
    """Limits of the HTTP and GraphQL APIs' requests, and how their streams poll."""

    name: ClassVar[str] = "api"

    graphql_path: str = Field(
        "/graphql",
        pattern=r"^/[A-Za-z0-9/_.-]*[A-Za-z0-9_.-]$",
        description="Path of the Kili-compatible GraphQL API (the Kili SDK's api_endpoint).",
    )
    graphql_max_cost: int = Field(
        50_000,
        ge=1,
        description="The most a GraphQL document may cost (docs/kili.md: 1,000 a root field, "
        "1 a field per list item); a dearer one is refused with query_too_costly before it "
        "runs.",
    )
    graphql_cost_per_token: int = Field(
        2_000,
        ge=1,
        description="GraphQL cost a tenant key's request token buys: a document takes "
        "ceil(cost / this) tokens of key_requests_per_minute (one Kili SDK call takes 1).",
    )
    max_event_bytes: int = Field(1024 * 1024, ge=1024, description="Largest event body.")
    # At most 200: the envelope serializer gives up near 256 levels (executor.intake.json_scan).
    max_event_depth: int = Field(
        100,
        ge=2,
        le=200,
        description="Deepest nesting of objects and arrays in an event body (the body is "
        "level 1, its label level 2; at most 200); deeper events answer 422 `event_too_deep`.",
    )
    max_request_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest body of any other request (not uploads)."
    )
    log_follow_poll_s: float = Field(
        1.0, gt=0, description="Idle log stream re-reads the store (writes by other processes)."
    )
    build_log_poll_s: float = Field(0.5, gt=0, description="Build log stream re-read interval.")
    sse_heartbeat_s: float = Field(15.0, gt=0, description="Keep-alive comment on idle streams.")


class RetentionSettings(Group):
    """How long logs and finished invocations are kept, and how they are purged."""

    name: ClassVar[str] = "retention"

    log_retention_days: float = Field(
        30.0, gt=0, description="Logs and finished invocations older than this are purged."
    )
    plugin_log_budget_mib: float = Field(
        1024.0, gt=0, description="Log bytes kept per plugin; its oldest runs go first."
    )
    retention_interval_s: float = Field(3600.0, gt=0, description="Time between purges.")
    retention_batch: int = Field(
        1000, ge=1, description="Rows deleted per short transaction (keeps ingest flowing)."
    )


class TenancySettings(Group):
    """Abuse limits per API key, quotas per tenant (docs/tenants.md)."""

    name: ClassVar[str] = "tenancy"

    key_requests_per_minute: int = Field(
        600, ge=1, description="Requests one tenant key may send a minute (the operator's: any)."
    )
    metrics_max_plugins: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Plugins (tenant and name) that get their own series in the per-plugin "
        "metrics of /metrics; runs of plugins seen after that many are counted under "
        'plugin="other" (their tenant kept), so a tenant creating plugins cannot grow '
        "Prometheus without bound.",
    )
    key_cache_s: float = Field(
        5.0,
        ge=0,
        description="Seconds a tenant key the store accepted is trusted without asking it "
        "again (0: ask the store on every request). A key revoked through another process on "
        "the same PostgreSQL answers 401 once its NOTIFY arrives, and the cache is unused "
        "while the listening connection is down.",
    )
    key_upload_bytes_per_hour: int = Field(
        200 * MIB, ge=MIB, description="Upload bytes one tenant key may send an hour."
    )
    tenant_max_plugins: int = Field(100, ge=1, description="Plugins per tenant (default quota).")
    tenant_max_versions: int = Field(
        50, ge=1, description="Versions per plugin of a tenant (default quota)."
    )
    tenant_max_concurrent_runs: int | None = Field(
        None, ge=1, description="Runs of one tenant at once (default quota); unset: no cap."
    )
