"""Aggregates for charts: runs, durations, start latency, gateway calls and builds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from executor.api.deps import PluginsRead, ServiceDep
from executor.api.presenters import stats_public
from executor.identifiers import PluginName, ProjectId
from executor.schemas.operations import StatsBucket, StatsPublic
from executor.service import stats as stats_service

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get("", response_model=StatsPublic)
def read_stats(
    caller: PluginsRead,
    service: ServiceDep,
    bucket: Annotated[StatsBucket, Query(description="Width of a bucket (UTC).")] = "hour",
    since: Annotated[
        datetime | None, Query(description="Start, inclusive (default: 24 buckets back).")
    ] = None,
    until: Annotated[datetime | None, Query(description="End, exclusive (default: now).")] = None,
    plugin: Annotated[PluginName | None, Query(description="Only this plugin.")] = None,
    project: Annotated[ProjectId | None, Query(description="Only this project's runs.")] = None,
) -> StatsPublic:
    """The caller's tenant's runs by terminal status, duration and start-latency p50/p95,
    warm/cold starts, gateway calls and errors, builds, per bucket (empty ones as zeros);
    duration p50/p95 per plugin version; the five plugins with the most failures; the
    queue now. A time without a zone is UTC. Percentiles: ``docs/stats.md``."""
    query = stats_service.StatsQuery(
        bucket=bucket, since=since, until=until, plugin=plugin, project=project
    )
    return stats_public(stats_service.read_stats(service.db, service.settings, caller, query))
