"""Charts' figures: the range a caller asks for, checked, then aggregated by the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from executor.errors import InvalidQuery, RangeTooLong, TooManyBuckets
from executor.schemas.operations import StatsBucket
from executor.settings import Settings
from executor.store import plugins as plugin_store
from executor.store import stats as stats_store
from executor.store.db import Database
from executor.tenancy.access import Caller

__all__ = ["BUCKET_WIDTHS_S", "DEFAULT_BUCKETS", "MAX_BUCKETS", "StatsQuery", "read_stats"]

BUCKET_WIDTHS_S: dict[StatsBucket, int] = {"minute": 60, "hour": 3600, "day": 86_400}
# Enough for a day by the minute or two months by the hour; a chart shows no more.
MAX_BUCKETS = 1500
# Without `since`: this many buckets back from `until` (a day by the hour).
DEFAULT_BUCKETS = 24
# Runs exist between these (a day's margin keeps zone offsets and buckets from overflowing).
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class StatsQuery:
    """The filters of ``GET /v1/stats`` as the caller sent them (times may be naive: UTC)."""

    bucket: StatsBucket = "hour"
    since: datetime | None = None
    until: datetime | None = None
    plugin: str | None = None
    project: str | None = None


def read_stats(
    db: Database, settings: Settings, caller: Caller, query: StatsQuery
) -> stats_store.Stats:
    """The caller's tenant's figures over the range (checked first).

    400 if ``since`` is not before ``until``, the range is longer than log retention or
    holds more than ``MAX_BUCKETS`` buckets; 404 for a plugin the tenant does not have.
    """
    flt = _checked_filter(settings, caller, query)
    with db.session() as session:
        if flt.plugin_name is not None:
            plugin_store.get_plugin(session, caller.tenant_id, flt.plugin_name)
        return stats_store.read_stats(session, flt)


def _checked_filter(
    settings: Settings, caller: Caller, query: StatsQuery
) -> stats_store.StatsFilter:
    width_s = BUCKET_WIDTHS_S[query.bucket]
    until = _utc(query.until, "until") or datetime.now(UTC)
    since = _utc(query.since, "since") or until - timedelta(seconds=width_s * DEFAULT_BUCKETS)
    if since >= until:
        raise InvalidQuery(
            f"since ({since.isoformat()}) must be earlier than until ({until.isoformat()}):"
            " swap them or widen the range",
            field="since",
        )
    retention = timedelta(days=settings.retention.log_retention_days)
    if until - since > retention:
        raise RangeTooLong(
            f"since: the range from {since.isoformat()} to {until.isoformat()} is longer than"
            f" the {settings.retention.log_retention_days:g} days finished runs are kept"
            " (EXECUTOR_LOG_RETENTION_DAYS): ask for a shorter range",
            field="since",
            maximum_days=settings.retention.log_retention_days,
        )
    flt = stats_store.StatsFilter(
        tenant_id=caller.tenant_id,
        since=since,
        until=until,
        width_s=width_s,
        plugin_name=query.plugin,
        project_id=query.project,
    )
    count = len(stats_store.bucket_starts(flt))
    if count > MAX_BUCKETS:
        raise TooManyBuckets(
            f"bucket: {count} {query.bucket} buckets from {since.isoformat()} to"
            f" {until.isoformat()}; at most {MAX_BUCKETS}: pick a wider bucket or a shorter"
            " range",
            field="bucket",
            maximum=MAX_BUCKETS,
        )
    return flt


def _utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` as aware UTC (a time without a zone is read as UTC), between 1970 and 9998."""
    if value is None:
        return None
    if (
        not EARLIEST.replace(tzinfo=None)
        <= value.replace(tzinfo=None)
        <= LATEST.replace(tzinfo=None)
    ):
        raise InvalidQuery(
            f"{name} ({value.isoformat()}) is out of range: give a time between"
            f" {EARLIEST.isoformat()} and {LATEST.isoformat()}",
            field=name,
        )
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
