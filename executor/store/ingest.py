"""Event ingest's reads and writes, in SQLAlchemy Core on the caller's one connection.

Ingest is the busiest write (every event the platform posts), and a profile of it under
load showed the ORM's unit of work (identity map, flush, one INSERT per row) costing
several times the statements themselves. So these functions read only the columns ingest
uses, into plain records, and write each kind of row of a batch of events posted at the
same time with one statement compiled once (``write_events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from executor.statuses import BuildStatus
from executor.store.announce import announcement, encoded
from executor.store.db import Database
from executor.store.driver_sql import DriverStatement, insert_records, records
from executor.store.tables import (
    Activation,
    Event,
    Invocation,
    Plugin,
    PluginVersion,
    Project,
    new_id,
    utcnow,
)

__all__ = [
    "PROJECT_STATE",
    "QUEUE_CHANNEL",
    "EventIdTaken",
    "EventRows",
    "NewEvent",
    "ProjectActivation",
    "ProjectState",
    "RunnableVersion",
    "event_rows",
    "new_event",
    "project_state",
    "stored_event",
    "write_events",
]

# Announced (PostgreSQL ``NOTIFY``, delivered at the commit) by each transaction that queues
# invocations: the dispatchers of every process claim at once instead of at their next poll.
QUEUE_CHANNEL = "executor_queue"
# Its payload: where the runs may go (``executor.store.announce``).


@dataclass(frozen=True)
class RunnableVersion:
    """A version of a plugin an event can run (ACTIVE, image kept)."""

    id: str
    number: int
    status: str
    image_removed_at: datetime | None
    handlers: list[str]
    image_id: str | None


@dataclass(frozen=True)
class ProjectActivation:
    """A plugin active on a project, with its plugin's runnable versions."""

    plugin_id: str
    plugin_name: str
    current_version_id: str | None
    event_matcher: list[str] | None
    max_retries: int
    version_number: int | None  # pinned; None follows the current version
    versions: list[RunnableVersion]
    placement: str  # the runtime and node selector its runs need (``announce.encoded``)


@dataclass(frozen=True)
class NewEvent:
    """An event just stored: what its invocations copy."""

    id: str
    tenant_id: str
    type: str
    project_id: str
    asset_id: str | None
    received_at: datetime


# The statements are built once (with bind parameters) against the tables themselves: building
# an expression from ORM attributes on every request cost more than running it.
_projects, _events, _invocations = Project.__table__.c, Event.__table__.c, Invocation.__table__.c
_activations, _plugins, _versions = (
    Activation.__table__.c,
    Plugin.__table__.c,
    PluginVersion.__table__.c,
)
_EVENT_TENANT = select(_events.tenant_id).where(_events.id == bindparam("event_id"))
_EVENT_INVOCATIONS = (
    select(_invocations.id)
    .where(_invocations.event_id == bindparam("event_id"))
    .order_by(_invocations.id)
)
# The project's tenant, and that tenant's activations on it with their runnable versions:
# one statement (no row: no tenant has the project, and nothing can be active on it, since
# activating claims the project).
PROJECT_STATE = (
    select(
        _projects.tenant_id,
        _activations.plugin_id,
        _activations.event_matcher,
        _activations.max_retries,
        _activations.version_number,
        _activations.runtime,
        _activations.node_selector,
        _plugins.name,
        _plugins.current_version_id,
        _versions.id.label("version_id"),
        _versions.number,
        _versions.status,
        _versions.image_removed_at,
        _versions.handlers,
        _versions.image_id,
    )
    .select_from(Project.__table__)
    # Flat outer joins: SQLite materialized a nested (activations JOIN plugins), scanning
    # every activation of every project for each event, where these use its indexes.
    .outerjoin(Activation.__table__, _activations.project_id == _projects.id)
    .outerjoin(
        Plugin.__table__,
        and_(_plugins.id == _activations.plugin_id, _plugins.tenant_id == _projects.tenant_id),
    )
    .outerjoin(
        PluginVersion.__table__,
        and_(
            _versions.plugin_id == _plugins.id,
            _versions.status == BuildStatus.ACTIVE.value,
            _versions.image_removed_at.is_(None),
        ),
    )
    .where(_projects.id == bindparam("project_id"))
    .order_by(_activations.created_at, _activations.id)
)
# SQLite's (PostgreSQL's is ``_WRITE_POSTGRES``): an executemany, in-process.
_INSERT_EVENTS = insert(Event).returning(_events.id)
_INSERT_INVOCATIONS = insert(Invocation).returning(_invocations.id)


@dataclass(frozen=True)
class ProjectState:
    """What ingest needs of a project: its tenant and what is active on it."""

    tenant_id: str | None  # None: no tenant has the project yet
    activations: list[ProjectActivation]  # its tenant's, oldest activation first


def stored_event(connection: Connection, event_id: str) -> tuple[str, list[str]] | None:
    """(tenant, invocation ids in id order) of a stored event; None if there is none."""
    tenant_id: str | None = connection.scalar(_EVENT_TENANT, {"event_id": event_id})
    if tenant_id is None:
        return None
    return tenant_id, list(connection.scalars(_EVENT_INVOCATIONS, {"event_id": event_id}))


def new_event(
    *, event_id: str | None, tenant_id: str, type: str, project_id: str, asset_id: str | None
) -> NewEvent:
    """An event to store (a new id unless ``event_id`` is given), received now."""
    return NewEvent(event_id or new_id(), tenant_id, type, project_id, asset_id, utcnow())


def _event_row(
    event: NewEvent, label: dict[str, Any] | None, payload: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": event.id,
        "tenant_id": event.tenant_id,
        "type": event.type,
        "project_id": event.project_id,
        "asset_id": event.asset_id,
        "label": label,
        "payload": payload,
        "received_at": event.received_at,
    }


def project_state(connection: Connection, project_id: str) -> ProjectState:
    """The project's tenant and that tenant's plugins active on it, each with its runnable
    versions: one query."""
    tenant_id: str | None = None
    found: dict[str, ProjectActivation] = {}
    for row in connection.execute(PROJECT_STATE, {"project_id": project_id}):
        tenant_id = row.tenant_id
        if row.name is None:  # no activation, or one of a plugin not of the project's tenant
            continue
        activation = found.get(row.plugin_id)
        if activation is None:
            activation = found[row.plugin_id] = ProjectActivation(
                row.plugin_id,
                row.name,
                row.current_version_id,
                row.event_matcher,
                row.max_retries,
                row.version_number,
                [],
                encoded((row.runtime, row.node_selector)),
            )
        if row.version_id is not None:
            activation.versions.append(
                RunnableVersion(
                    row.version_id,
                    row.number,
                    row.status,
                    row.image_removed_at,
                    row.handlers,
                    row.image_id,
                )
            )
    return ProjectState(tenant_id, list(found.values()))


def _invocation_rows(
    event: NewEvent, runs: list[tuple[ProjectActivation, RunnableVersion]]
) -> list[dict[str, Any]]:
    """One queued invocation of ``event`` per (activation, version), each with a new id."""
    return [
        {
            "id": new_id(),
            "tenant_id": event.tenant_id,
            "event_id": event.id,
            "plugin_id": activation.plugin_id,
            "version_id": version.id,
            "plugin_name": activation.plugin_name,
            "version_number": version.number,
            "project_id": event.project_id,
            "event_type": event.type,
            "asset_id": event.asset_id,
            "image_id": version.image_id,
            "queued_at": event.received_at,
            "max_retries": activation.max_retries,
        }
        for activation, version in runs
    ]


@dataclass(frozen=True)
class EventRows:
    """The rows one event writes: the event and its queued invocations."""

    event: dict[str, Any]
    invocations: list[dict[str, Any]]
    placements: list[str]  # each invocation's, encoded

    @property
    def invocation_ids(self) -> list[str]:
        return [row["id"] for row in self.invocations]


def event_rows(
    event: NewEvent,
    label: dict[str, Any] | None,
    payload: dict[str, Any] | None,
    runs: list[tuple[ProjectActivation, RunnableVersion]],
) -> EventRows:
    """``event`` and one queued invocation per (activation, version), in the order of
    ``runs``."""
    placements = [activation.placement for activation, _ in runs]
    return EventRows(_event_row(event, label, payload), _invocation_rows(event, runs), placements)


# On PostgreSQL the rows of a batch and the announcement of its runs are one statement, its
# own transaction, run on the driver's cursor (``driver_sql``): the events, the invocations
# (after the events: their foreign keys are checked at the statement's end), and the NOTIFY
# (none without runs), delivered at its commit. It was five round trips (BEGIN, three
# statements, COMMIT) through SQLAlchemy, on every event's path to its run.
_WRITE_POSTGRES = DriverStatement.of(
    text(
        f"WITH {insert_records(Event, 'new_events')}, "
        f"{insert_records(Invocation, 'new_runs')} "
        f"SELECT pg_notify('{QUEUE_CHANNEL}', CAST(:payload AS text)) "
        "WHERE CAST(:payload AS text) IS NOT NULL"
    )
)


def _write(db: Database, autocommit: Connection, batch: list[EventRows]) -> None:
    """Insert the rows of ``batch`` in one transaction: on PostgreSQL one statement on
    ``autocommit`` (``_WRITE_POSTGRES``); on SQLite a statement per kind of row (its one
    process's intake wakes its dispatcher: no announcement)."""
    events = [rows.event for rows in batch]
    invocations = [row for rows in batch for row in rows.invocations]
    if not db.is_sqlite:
        placements = [p for rows in batch for p in rows.placements]
        rows = {
            "new_events": records(Event, events),
            "new_runs": records(Invocation, invocations),
            "payload": announcement(placements) if placements else None,
        }
        _WRITE_POSTGRES.rows(autocommit, rows)
        return
    with db.write_connection() as connection:
        connection.execute(_INSERT_EVENTS, events)
        if invocations:
            connection.execute(_INSERT_INVOCATIONS, invocations)


class EventIdTaken(Exception):
    """The event's id (its idempotency key) was stored meanwhile, by a post at the same time."""


def _commit(db: Database, connection: Connection, batch: list[EventRows]) -> None:
    try:
        _write(db, connection, batch)
    except IntegrityError as error:
        if len(batch) > 1:
            raise
        # Its invocations' ids are new, so the one key that can clash is the event's.
        raise EventIdTaken(batch[0].event["id"]) from error


def _connection_lost(error: Exception) -> bool:
    return isinstance(error, DBAPIError) and error.connection_invalidated


def write_events(
    db: Database, connection: Connection, batch: list[EventRows]
) -> list[Exception | None]:
    """Commit the rows of ``batch``: what each event's write raised, None once committed.
    ``connection`` is an autocommit connection (``Database.autocommit_connection``): the
    write's on PostgreSQL, where it is one statement.

    Each commit waits for the store to make it durable (PostgreSQL flushes its write-ahead
    log to disk), so events posted at the same time share one statement and one commit. A
    batch that fails is written again one event at a time, so that one bad event (an id
    stored meanwhile: ``EventIdTaken``) fails only itself; once the connection is lost
    (``connection.invalidated``), what is left is not tried on it.
    """
    if not batch:
        return []
    try:
        _commit(db, connection, batch)
    except Exception as error:
        if len(batch) == 1 or _connection_lost(error):
            return [error] * len(batch)
        outcomes: list[Exception | None] = []
        for done, rows in enumerate(batch):
            outcomes += write_events(db, connection, [rows])
            lost = outcomes[-1]
            if lost is not None and _connection_lost(lost):
                return outcomes + [lost] * (len(batch) - done - 1)
        return outcomes
    return [None] * len(batch)
