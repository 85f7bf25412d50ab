"""Aggregates for charts (``GET /v1/stats``), computed in SQL on SQLite and PostgreSQL alike.

Buckets are whole UTC minutes, hours or days: a bucket's index is its start in seconds since
the epoch divided by its width. A run counts in the bucket it *finished* in (terminal runs
only); a gateway call in the bucket it was made in; a build in the bucket it ended in.

Percentiles are continuous, with linear interpolation between the two nearest ranks (as
PostgreSQL's ``percentile_cont``, NumPy's default): of n ordered values v[1..n], the p-th is
at rank r = 1 + p (n - 1), that is v[floor(r)] + (r - floor(r)) (v[floor(r) + 1] - v[floor(r)]).
PostgreSQL computes it with ``percentile_cont``; SQLite, which has none, with the same formula
over ``row_number()`` ranks. Both are rounded to 0.1 ms so the two stores give equal figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from executor.statuses import TERMINAL_STATUSES, BuildStatus, InvocationStatus
from executor.store.tables import GatewayCall, Invocation, Plugin, PluginVersion

__all__ = [
    "BucketStats",
    "Percentiles",
    "PluginFailures",
    "QueueNow",
    "Stats",
    "StatsFilter",
    "VersionStats",
    "bucket_starts",
    "read_stats",
]

PERCENTILES = (0.5, 0.95)
# Runs that ended badly: what "the plugins with the most failures" counts.
FAILURE_STATUSES = frozenset(TERMINAL_STATUSES) - {
    InvocationStatus.SUCCEEDED,
    InvocationStatus.CANCELED,
}
TOP_FAILING = 5
# A gateway call failed when the platform (or the gateway) answered 4xx/5xx, or none came.
GATEWAY_ERROR_STATUS = 400
MS_PER_DAY = 86_400_000.0


@dataclass(frozen=True)
class StatsFilter:
    """What to aggregate: one tenant's runs, maybe one plugin's or project's, in a range."""

    tenant_id: str
    since: datetime
    until: datetime
    width_s: int
    plugin_name: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class Percentiles:
    p50: float | None = None
    p95: float | None = None


@dataclass
class BucketStats:
    """One bucket's figures; a bucket nothing happened in has zeros and no percentiles."""

    start: int  # seconds since the epoch
    runs: dict[str, int] = field(default_factory=dict)
    duration_ms: Percentiles = Percentiles()
    start_latency_ms: Percentiles = Percentiles()
    warm: int = 0
    cold: int = 0
    gateway_calls: int = 0
    gateway_errors: int = 0
    builds: int = 0
    builds_failed: int = 0
    build_ms: Percentiles = Percentiles()


@dataclass(frozen=True)
class VersionStats:
    plugin_name: str
    version: int
    runs: int
    duration_ms: Percentiles


@dataclass(frozen=True)
class PluginFailures:
    plugin_name: str
    failures: int
    runs: int


@dataclass(frozen=True)
class QueueNow:
    depth: int
    oldest_queued_at: datetime | None


@dataclass(frozen=True)
class Stats:
    asked: StatsFilter
    buckets: list[BucketStats]
    versions: list[VersionStats]
    top_failing: list[PluginFailures]
    queue: QueueNow


def read_stats(session: Session, flt: StatsFilter) -> Stats:
    """Every figure of the range, with a bucket (zeros included) for each width in it."""
    sql = _Dialect(session, flt.width_s)
    buckets = {start: BucketStats(start=start) for start in bucket_starts(flt)}
    _fill_runs(session, sql, flt, buckets)
    _fill_gateway(session, sql, flt, buckets)
    _fill_builds(session, sql, flt, buckets)
    return Stats(
        asked=flt,
        buckets=list(buckets.values()),
        versions=_versions(session, sql, flt),
        top_failing=_top_failing(session, flt),
        queue=_queue(session, flt),
    )


def bucket_starts(flt: StatsFilter) -> range:
    """The start (epoch seconds) of every bucket that holds a moment of [since, until)."""
    first = int(flt.since.timestamp()) // flt.width_s * flt.width_s
    return range(first, math.ceil(flt.until.timestamp()), flt.width_s)


class _Dialect:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, session: Session, width_s: int) -> None:
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.width_s = width_s

    def bucket(self, column: Any) -> ColumnElement[int]:
        """The start (epoch seconds) of the bucket ``column`` falls in."""
        if self.postgres:
            seconds = cast(func.floor(func.extract("epoch", column)), BigInteger)
        else:
            seconds = cast(func.strftime("%s", column), BigInteger)
        return (seconds // self.width_s) * self.width_s

    def millis(self, start: Any, end: Any) -> ColumnElement[float]:
        """Whole milliseconds from ``start`` to ``end``."""
        if self.postgres:
            return func.round(func.extract("epoch", end - start) * 1000)
        return func.round((func.julianday(end) - func.julianday(start)) * MS_PER_DAY)

    def percentiles(
        self, session: Session, query: Select[Any], keys: list[Any], value: Any
    ) -> dict[tuple[Any, ...], Percentiles]:
        """p50 and p95 of ``value`` per ``keys`` over the rows of ``query`` (a select with
        its filters), rows where ``value`` is NULL left out."""
        query = query.where(value.is_not(None))
        if self.postgres:
            figures = [func.percentile_cont(p).within_group(value) for p in PERCENTILES]
            rows = session.execute(query.with_only_columns(*keys, *figures).group_by(*keys))
        else:
            rows = session.execute(self._ranked_percentiles(query, keys, value))
        return {
            tuple(row[: len(keys)]): Percentiles(*(_round(v) for v in row[len(keys) :]))
            for row in rows
        }

    @staticmethod
    def _ranked_percentiles(query: Select[Any], keys: list[Any], value: Any) -> Select[Any]:
        labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
        ranked = query.with_only_columns(
            *labelled,
            value.label("v"),
            func.row_number().over(partition_by=keys, order_by=value).label("rn"),
            func.count().over(partition_by=keys).label("n"),
        ).subquery()
        outer_keys = [ranked.c[f"k{i}"] for i in range(len(keys))]
        figures = []
        for p in PERCENTILES:
            rank = 1 + p * (ranked.c.n - 1)
            low = cast(rank, Integer)  # floor: the rank is positive
            frac = rank - low
            figures.append(
                func.sum(
                    case(
                        (ranked.c.rn == low, ranked.c.v * (1 - frac)),
                        (ranked.c.rn == low + 1, ranked.c.v * frac),
                        else_=literal(0.0),
                    )
                )
            )
        return select(*outer_keys, *figures).group_by(*outer_keys)


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _runs_query(flt: StatsFilter) -> Select[Any]:
    """The tenant's terminal runs that finished in the range (and match the filters)."""
    query = select(Invocation.id).where(
        Invocation.tenant_id == flt.tenant_id,
        Invocation.status.in_([s.value for s in TERMINAL_STATUSES]),
        Invocation.finished_at >= flt.since,
        Invocation.finished_at < flt.until,
    )
    if flt.plugin_name is not None:
        query = query.where(Invocation.plugin_name == flt.plugin_name)
    if flt.project_id is not None:
        query = query.where(Invocation.project_id == flt.project_id)
    return query


def _fill_runs(
    session: Session, sql: _Dialect, flt: StatsFilter, buckets: dict[int, BucketStats]
) -> None:
    runs = _runs_query(flt)
    key = sql.bucket(Invocation.finished_at)
    counts = runs.with_only_columns(key, Invocation.status, func.count()).group_by(
        key, Invocation.status
    )
    for start, status, count in session.execute(counts):
        buckets[start].runs[status] = count
    starts = (
        runs.where(Invocation.started_at.is_not(None))
        .with_only_columns(key, Invocation.cold_start, func.count())
        .group_by(key, Invocation.cold_start)
    )
    for start, cold, count in session.execute(starts):
        if cold:
            buckets[start].cold = count
        else:
            buckets[start].warm = count
    durations = sql.percentiles(session, runs, [key], Invocation.duration_ms)
    latency = sql.millis(Invocation.queued_at, Invocation.handler_started_at)
    latencies = sql.percentiles(session, runs, [key], latency)
    for (start,), figures in durations.items():
        buckets[start].duration_ms = figures
    for (start,), figures in latencies.items():
        buckets[start].start_latency_ms = figures


def _fill_gateway(
    session: Session, sql: _Dialect, flt: StatsFilter, buckets: dict[int, BucketStats]
) -> None:
    key = sql.bucket(GatewayCall.created_at)
    failed = (GatewayCall.status >= GATEWAY_ERROR_STATUS) | GatewayCall.error.is_not(None)
    query = (
        select(key, func.count(), func.sum(case((failed, 1), else_=0)))
        .join(Invocation, Invocation.id == GatewayCall.invocation_id)
        .where(
            Invocation.tenant_id == flt.tenant_id,
            GatewayCall.created_at >= flt.since,
            GatewayCall.created_at < flt.until,
        )
        .group_by(key)
    )
    if flt.plugin_name is not None:
        query = query.where(Invocation.plugin_name == flt.plugin_name)
    if flt.project_id is not None:
        query = query.where(Invocation.project_id == flt.project_id)
    for start, calls, errors in session.execute(query):
        buckets[start].gateway_calls = calls
        buckets[start].gateway_errors = int(errors or 0)


def _fill_builds(
    session: Session, sql: _Dialect, flt: StatsFilter, buckets: dict[int, BucketStats]
) -> None:
    """Builds are the plugin's, not a project's: ``project_id`` does not narrow them."""
    key = sql.bucket(PluginVersion.finished_at)
    builds = (
        select(PluginVersion.id)
        .join(Plugin, Plugin.id == PluginVersion.plugin_id)
        .where(
            Plugin.tenant_id == flt.tenant_id,
            PluginVersion.status.in_([BuildStatus.ACTIVE.value, BuildStatus.FAILED.value]),
            PluginVersion.finished_at >= flt.since,
            PluginVersion.finished_at < flt.until,
        )
    )
    if flt.plugin_name is not None:
        builds = builds.where(Plugin.name == flt.plugin_name)
    failed = case((PluginVersion.status == BuildStatus.FAILED.value, 1), else_=0)
    counts = builds.with_only_columns(key, func.count(), func.sum(failed)).group_by(key)
    for start, count, failures in session.execute(counts):
        buckets[start].builds = count
        buckets[start].builds_failed = int(failures or 0)
    took = sql.millis(PluginVersion.created_at, PluginVersion.finished_at)
    for (start,), figures in sql.percentiles(session, builds, [key], took).items():
        buckets[start].build_ms = figures


def _versions(session: Session, sql: _Dialect, flt: StatsFilter) -> list[VersionStats]:
    """Per plugin version over the whole range: so a slower new version shows."""
    runs = _runs_query(flt)
    name, number = Invocation.plugin_name, Invocation.version_number
    counts = (
        runs.with_only_columns(name, number, func.count().label("runs"))
        .group_by(name, number)
        .order_by(name, number)
    )
    durations = sql.percentiles(session, runs, [name, number], Invocation.duration_ms)
    return [
        VersionStats(
            row.plugin_name,
            row.version_number,
            row.runs,
            durations.get((row.plugin_name, row.version_number), Percentiles()),
        )
        for row in session.execute(counts)
    ]


def _top_failing(session: Session, flt: StatsFilter) -> list[PluginFailures]:
    failed = case((Invocation.status.in_([s.value for s in FAILURE_STATUSES]), 1), else_=0)
    failures = func.sum(failed)
    query = (
        _runs_query(flt)
        .with_only_columns(Invocation.plugin_name, failures, func.count())
        .group_by(Invocation.plugin_name)
        .having(failures > 0)
        .order_by(failures.desc(), Invocation.plugin_name)
        .limit(TOP_FAILING)
    )
    return [PluginFailures(name, int(n), runs) for name, n, runs in session.execute(query)]


def _queue(session: Session, flt: StatsFilter) -> QueueNow:
    """The tenant's queue now (whatever the range): how many wait, since when the oldest."""
    query = select(func.count(), func.min(Invocation.queued_at)).where(
        and_(
            Invocation.tenant_id == flt.tenant_id,
            Invocation.status == InvocationStatus.QUEUED.value,
        )
    )
    if flt.plugin_name is not None:
        query = query.where(Invocation.plugin_name == flt.plugin_name)
    if flt.project_id is not None:
        query = query.where(Invocation.project_id == flt.project_id)
    depth, oldest = session.execute(query).one()
    return QueueNow(depth=depth, oldest_queued_at=_aware(oldest))


def _aware(value: Any) -> datetime | None:
    # An aggregate bypasses the column type: SQLite gives text, PostgreSQL a naive datetime.
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC)
