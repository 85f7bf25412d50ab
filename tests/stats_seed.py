"""Runs, gateway calls and builds with known times and durations, written through the store
functions (what charts and ``GET /v1/stats`` are checked against)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from executor.statuses import BuildStatus, InvocationStatus, RuntimeFlavor
from executor.store import gateway as gateway_store
from executor.store import plugins as plugin_store
from executor.store import queue as queue_store
from executor.store.db import Database
from executor.store.tables import Invocation

QUOTA = 100


@dataclass(frozen=True)
class Version:
    plugin_id: str
    version_id: str
    name: str
    number: int


def add_version(
    db: Database, tenant: str, plugin: str, *, built_at: datetime, build_ms: int, failed: bool
) -> Version:
    """The plugin's next version, its build ended ``build_ms`` after it began."""
    with db.session() as session:
        version = plugin_store.add_version(
            session,
            tenant,
            plugin,
            max_plugins=QUOTA,
            max_versions=QUOTA,
            handlers=["onSubmit"],
            requirements="",
            source_sha256="0" * 64,
            source=b"",
            runtime=RuntimeFlavor.MINIMAL,
        )
        version.status = BuildStatus.FAILED if failed else BuildStatus.ACTIVE
        version.created_at = built_at - timedelta(milliseconds=build_ms)
        version.finished_at = built_at
        return Version(version.plugin_id, version.id, plugin, version.number)


def add_run(
    db: Database,
    version: Version,
    tenant: str,
    *,
    status: InvocationStatus,
    finished_at: datetime,
    duration_ms: int,
    latency_ms: int,
    cold: bool = True,
    project: str = "stats-proj",
    gateway_statuses: tuple[int, ...] = (),
) -> Invocation:
    """A run of ``version`` that ended ``status`` at ``finished_at``; its handler began
    ``latency_ms`` after it was queued; it made a gateway call per ``gateway_statuses``."""
    started = finished_at - timedelta(milliseconds=duration_ms)
    queued = started - timedelta(milliseconds=latency_ms)
    with db.session() as session:
        event = queue_store.add_event(
            session, tenant_id=tenant, type="onSubmit", project_id=project, received_at=queued
        )
        run = queue_store.add_invocation(
            session,
            Invocation(
                tenant_id=tenant,
                event_id=event.id,
                plugin_id=version.plugin_id,
                version_id=version.version_id,
                plugin_name=version.name,
                version_number=version.number,
                project_id=project,
                event_type="onSubmit",
                status=status,
                queued_at=queued,
                started_at=started,
                handler_started_at=started,
                finished_at=finished_at,
                duration_ms=duration_ms,
                cold_start=cold,
            ),
        )
        for code in gateway_statuses:
            gateway_store.add_call(
                session,
                run.lease_generation,
                invocation_id=run.id,
                created_at=started,
                method="POST",
                path="/api/label/v2/graphql",
                status=code,
            )
        return run


def add_queued(db: Database, version: Version, tenant: str, *, queued_at: datetime) -> None:
    """A queued run the dispatcher leaves alone (its retry time is a day from now)."""
    with db.session() as session:
        event = queue_store.add_event(
            session, tenant_id=tenant, type="onSubmit", project_id="stats-proj"
        )
        queue_store.add_invocation(
            session,
            Invocation(
                tenant_id=tenant,
                event_id=event.id,
                plugin_id=version.plugin_id,
                version_id=version.version_id,
                plugin_name=version.name,
                version_number=version.number,
                project_id="stats-proj",
                event_type="onSubmit",
                queued_at=queued_at,
                not_before=datetime.now(UTC) + timedelta(days=1),
            ),
        )
