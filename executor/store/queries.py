"""Reads of invocations and their events: one, a page, counts, a version's recent
outcomes, and what an attempt runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from executor.errors import NotFound
from executor.statuses import TERMINAL_STATUSES, InvocationStatus
from executor.store.driver_sql import columns_of, detached, width
from executor.store.tables import (
    Activation,
    Event,
    Invocation,
    LogRecord,
    Plugin,
    PluginVersion,
    Webhook,
)

__all__ = [
    "Outcomes",
    "RunInputs",
    "count_by_status",
    "find_event",
    "find_invocation",
    "get_invocation",
    "input_columns",
    "inputs_from",
    "inputs_of",
    "inputs_of_columns",
    "joined_inputs",
    "list_invocations",
    "oldest_queued_at",
    "recent_outcomes",
    "run_inputs",
]


def get_invocation(
    session: Session, invocation_id: str, tenant_id: str | None = None, *, calls: bool = False
) -> Invocation:
    """The invocation; NotFound if there is none (or it is not ``tenant_id``'s, when given).
    With ``calls``, its gateway calls loaded (as presented), if the session does not hold
    it already."""
    options = [selectinload(Invocation.gateway_calls)] if calls else []
    invocation = session.get(Invocation, invocation_id, options=options)
    if invocation is None or tenant_id not in (None, invocation.tenant_id):
        raise NotFound(f"no invocation {invocation_id!r}")
    return invocation


def list_invocations(
    session: Session,
    *,
    tenant_id: str,
    plugin_name: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    skip: int = 0,
) -> list[Invocation]:
    """A page of the tenant's invocations, newest first, with their gateway calls."""
    query = select(Invocation).where(Invocation.tenant_id == tenant_id)
    query = query.options(selectinload(Invocation.gateway_calls))
    if plugin_name is not None:
        query = query.where(Invocation.plugin_name == plugin_name)
    if project_id is not None:
        query = query.where(Invocation.project_id == project_id)
    if status is not None:
        query = query.where(Invocation.status == status)
    query = query.order_by(Invocation.queued_at.desc()).offset(skip).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class Outcomes:
    """How a version's latest ended runs went: ``failed`` of ``runs`` did not succeed."""

    runs: int
    failed: int


# Canceled runs (their plugin deleted, an operator's cancel) say nothing of the version.
_JUDGED = sorted(TERMINAL_STATUSES - {InvocationStatus.CANCELED})


def recent_outcomes(
    session: Session, tenant_id: str, plugin_name: str, version_id: str, limit: int
) -> Outcomes:
    """The ``limit`` latest ended runs of a version (canceled ones left out): how many,
    and how many did not succeed."""
    statuses = session.scalars(
        select(Invocation.status)
        .where(
            Invocation.tenant_id == tenant_id,
            Invocation.plugin_name == plugin_name,
            Invocation.version_id == version_id,
            Invocation.status.in_(_JUDGED),
        )
        .order_by(Invocation.queued_at.desc())
        .limit(limit)
    ).all()
    failed = sum(1 for status in statuses if status != InvocationStatus.SUCCEEDED)
    return Outcomes(runs=len(statuses), failed=failed)


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Invocation.status, func.count()).group_by(Invocation.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def oldest_queued_at(session: Session) -> datetime | None:
    """When the longest-waiting queued invocation was queued (index ``status, queued_at, id``)."""
    return session.scalar(
        select(func.min(Invocation.queued_at)).where(Invocation.status == InvocationStatus.QUEUED)
    )


def find_invocation(session: Session, invocation_id: str) -> Invocation | None:
    """The invocation, or None when there is none."""
    return session.get(Invocation, invocation_id)


def find_event(session: Session, event_id: str) -> Event | None:
    """The stored event, or None when there is none."""
    return session.get(Event, event_id)


@dataclass(frozen=True)
class RunInputs:
    """What an attempt of ``invocation`` runs: its event, version and plugin (any may be
    gone: a purged event, a deleted plugin), the OCI runtime its activation needs (None:
    the operator's), the seq of the run's last log record (earlier attempts'), and for a
    webhook version, its receiver (the run is a delivery)."""

    event: Event | None
    version: PluginVersion | None
    plugin: Plugin | None
    runtime: str | None = None
    last_seq: int = 0
    webhook: Webhook | None = None


def _join_inputs(query: Select[Any], run: Any) -> Select[Any]:
    """``query`` from the runs whose columns ``run`` names, outer-joined to what each runs:
    its event, version, plugin, activation and webhook."""
    activation = (Activation.plugin_id == run.plugin_id) & (Activation.project_id == run.project_id)
    return (
        query.outerjoin(Event, Event.id == run.event_id)
        .outerjoin(PluginVersion, PluginVersion.id == run.version_id)
        .outerjoin(Plugin, Plugin.id == run.plugin_id)
        .outerjoin(Activation, activation)
        .outerjoin(Webhook, Webhook.version_id == run.version_id)
    )


def _last_seq(run: Any) -> Any:
    return select(func.max(LogRecord.seq)).where(LogRecord.run_id == run.id).scalar_subquery()


def joined_inputs(run: Any, first: Any) -> Select[Any]:
    """``first`` (the run's id, or the run itself), then what the runs ``run`` stands for
    (``Invocation``, or an alias of the runs a claim's update returned) run: the columns
    ``RunInputs`` is made of (``inputs_from``)."""
    inputs = (Event, PluginVersion, Plugin, Activation.runtime, _last_seq(run), Webhook)
    return _join_inputs(select(first, *inputs).select_from(run), run)


# The tables whose columns ``input_columns`` gives, in order (the run's first), before the
# activation's runtime and the last log record's seq.
INPUT_TABLES = (Invocation, Event, PluginVersion, Plugin, Webhook)


def input_columns(runs: Any) -> Select[Any]:
    """``joined_inputs`` in columns of tables (``driver_sql.columns_of``), from ``runs``
    (a CTE of rows of the invocations table): each row is the columns of the run, its
    event, version, plugin and webhook, then its activation's runtime and the seq of its
    last log record (``inputs_of_columns``)."""
    run = runs.c
    columns: list[Any] = columns_of(Invocation, run)
    for table in INPUT_TABLES[1:]:
        columns += columns_of(table, table.__table__.c)
    columns += [Activation.runtime, _last_seq(run)]
    return _join_inputs(select(*columns).select_from(runs), run)


def inputs_of_columns(row: Sequence[Any]) -> tuple[Invocation, RunInputs]:
    """The run and its ``RunInputs`` of an ``input_columns`` row, as loaded instances."""
    loaded: list[Any] = []
    at = 0
    for table in INPUT_TABLES:
        loaded.append(detached(table, row[at : at + width(table)]))
        at += width(table)
    run, event, version, plugin, webhook = loaded
    runtime, seq = row[at:]
    return run, RunInputs(event, version, plugin, runtime, int(seq or 0), webhook)


def inputs_from(row: Sequence[Any]) -> RunInputs:
    """The ``RunInputs`` of a ``joined_inputs`` row (after its first column)."""
    event, version, plugin, runtime, seq, webhook = row[1:]
    return RunInputs(event, version, plugin, runtime, int(seq or 0), webhook)


# One statement, built once: it is on every start's path, between claim and hand-off.
_RUN_INPUTS = joined_inputs(Invocation, Invocation.id).where(
    Invocation.id.in_(bindparam("ids", expanding=True))
)


def inputs_of(session: Session, invocation_ids: list[str]) -> dict[str, RunInputs]:
    """What the attempts of the claimed invocations run, by invocation id, in one
    statement (the dispatcher reads them in its claim's transaction)."""
    if not invocation_ids:
        return {}
    rows = session.execute(_RUN_INPUTS, {"ids": invocation_ids}).all()
    return {row[0]: inputs_from(row) for row in rows}


def run_inputs(session: Session, invocation: Invocation) -> RunInputs:
    """What an attempt of the claimed ``invocation`` runs."""
    return inputs_of(session, [invocation.id])[invocation.id]
