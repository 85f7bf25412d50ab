"""What an operator watches: GET /v1/stats (executor.store.stats says how figures are
bucketed and computed) and GET /v1/nodes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from executor.statuses import InvocationStatus, NodeState

__all__ = [
    "NodePublic",
    "PercentilesPublic",
    "PluginFailuresPublic",
    "QueuePublic",
    "StatsBucket",
    "StatsBucketPublic",
    "StatsPublic",
    "VersionStatsPublic",
]

StatsBucket = Literal["minute", "hour", "day"]


class PercentilesPublic(BaseModel):
    """Continuous percentiles (linear interpolation); null when nothing was measured."""

    p50: float | None
    p95: float | None


class StatsBucketPublic(BaseModel):
    start: datetime
    runs: dict[InvocationStatus, int] = Field(description="Runs that ended here, by status.")
    total: int
    duration_ms: PercentilesPublic
    start_latency_ms: PercentilesPublic
    warm: int
    cold: int
    warm_share: float | None = Field(description="warm / (warm + cold); null without runs.")
    gateway_calls: int
    gateway_errors: int = Field(description="Calls answered 4xx/5xx or not answered.")
    gateway_error_share: float | None
    builds: int
    builds_failed: int
    build_ms: PercentilesPublic


class VersionStatsPublic(BaseModel):
    plugin: str
    version: int
    runs: int
    duration_ms: PercentilesPublic


class PluginFailuresPublic(BaseModel):
    plugin: str
    failures: int
    runs: int


class QueuePublic(BaseModel):
    depth: int
    oldest_queued_at: datetime | None
    oldest_queued_age_s: float | None


class StatsPublic(BaseModel):
    bucket: StatsBucket
    since: datetime
    until: datetime
    buckets: list[StatsBucketPublic]
    versions: list[VersionStatsPublic]
    top_failing: list[PluginFailuresPublic]
    queue: QueuePublic


class NodePublic(BaseModel):
    """A dispatching process on one Docker Engine (docs/scaling.md)."""

    id: str
    state: NodeState
    engine_version: str
    runtimes: list[str]
    max_concurrent_runs: int
    warm_pool_memory_mib: int
    labels: dict[str, str]
    warm: dict[str, int] = Field(description="Plugin version id -> warm containers ready.")
    running: int = Field(description="Runs it holds now.")
    started_at: datetime
    heartbeat_at: datetime = Field(
        description="Its last heartbeat (or claim, which renews it), by the database's clock."
    )
    clock_skew_s: float | None = Field(
        description="How far the node's clock was ahead of the database's at its last "
        "heartbeat (seconds; negative: behind; null: not measured yet)."
    )
