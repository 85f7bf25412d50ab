"""What management clients read: plugins, build outcomes and log pages, for one caller.

The Kili-compatible GraphQL API reads through these (never the store directly); each acts on
the caller's tenant only, so another tenant's plugin is a NotFound like in the REST API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from executor.errors import NotFound
from executor.statuses import BuildStatus
from executor.store import logs as log_store
from executor.store import plugins as plugin_store
from executor.store.db import Database
from executor.store.tables import LogRecord
from executor.tenancy.access import Caller

__all__ = [
    "BuildError",
    "PluginOverview",
    "build_errors",
    "check_name_free",
    "log_page",
    "plugin_exists",
    "plugin_overviews",
    "plugin_status",
]


@dataclass(frozen=True)
class PluginOverview:
    """A plugin as listings show it: its projects and when it last got a version."""

    id: str
    name: str
    project_ids: list[str]
    created_at: datetime
    updated_at: datetime
    status: str | None


@dataclass(frozen=True)
class BuildError:
    """One line of a failed build's log (the last one is the version's error)."""

    version: int
    content: str
    created_at: datetime


def plugin_exists(db: Database, caller: Caller, name: str) -> bool:
    with db.session() as session:
        try:
            plugin_store.get_plugin(session, caller.tenant_id, name)
        except NotFound:
            return False
        return True


def check_name_free(db: Database, caller: Caller, name: str) -> None:
    """NameTaken when the caller's tenant has a plugin of ``name`` but for case or form."""
    with db.session() as session:
        plugin_store.check_name_free(session, caller.tenant_id, name)


def plugin_overviews(db: Database, caller: Caller) -> list[PluginOverview]:
    """The caller's plugins by name."""
    with db.session() as session:
        overviews = []
        for plugin in plugin_store.list_plugins(session, caller.tenant_id):
            activations = plugin_store.list_activations(session, plugin_id=plugin.id)
            latest = plugin.versions[-1] if plugin.versions else None
            overviews.append(
                PluginOverview(
                    id=plugin.id,
                    name=plugin.name,
                    project_ids=[a.project_id for a in activations],
                    created_at=plugin.created_at,
                    updated_at=latest.created_at if latest else plugin.created_at,
                    status=latest.status if latest else None,
                )
            )
        return overviews


def plugin_status(db: Database, caller: Caller, name: str) -> BuildStatus:
    """The build status of the plugin's newest version (NotFound for no such plugin)."""
    with db.session() as session:
        plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
        if not plugin.versions:
            return BuildStatus.DEPLOYING
        return BuildStatus(plugin.versions[-1].status)


def build_errors(
    db: Database, caller: Caller, name: str, since: datetime | None
) -> list[BuildError]:
    """The log lines of the plugin's FAILED builds, oldest version first, each ending with
    the version's error; ``since`` keeps versions created at or after it."""
    errors: list[BuildError] = []
    with db.session() as session:
        plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
        for version in plugin.versions:
            if version.status != BuildStatus.FAILED or (since and version.created_at < since):
                continue
            at = version.finished_at or version.created_at
            lines = plugin_store.build_progress(session, version.id).log.splitlines()
            if version.error:
                lines.append(version.error)
            errors.extend(BuildError(version.number, line, at) for line in lines if line)
    return errors


def log_page(db: Database, where: log_store.LogFilter, limit: int, skip: int) -> list[LogRecord]:
    """One page of log records, oldest first (rows stay readable after the session)."""
    with db.session() as session:
        return log_store.query_page(session, where, limit=limit, skip=skip)
