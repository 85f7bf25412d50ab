"""What management clients read of plugins: the list, one plugin, its versions' build
outcomes and logs, for one caller.

The REST and the Kili-compatible GraphQL APIs read through these (never the store directly);
each acts on the caller's tenant only, so another tenant's plugin is a NotFound. Rows are
returned loaded, readable after their session: touching what was not loaded raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from executor.errors import NotFound
from executor.statuses import TERMINAL_STATUSES, BuildStatus
from executor.store import activations as activation_store
from executor.store import logs as log_store
from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import LogRecord, Plugin, PluginVersion
from executor.tenancy.access import Caller

__all__ = [
    "BuildError",
    "BuildLog",
    "ListedPlugin",
    "PluginOverview",
    "backlog_start",
    "build_errors",
    "build_log",
    "build_progress",
    "check_name_free",
    "listed_plugin",
    "listed_plugins",
    "log_page",
    "logs_after",
    "plugin",
    "plugin_exists",
    "plugin_overviews",
    "plugin_status",
    "version_id",
]


@dataclass(frozen=True)
class ListedPlugin:
    """A plugin with its versions, and the projects it is active on."""

    plugin: Plugin
    project_ids: list[str]


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


def listed_plugins(db: Database, caller: Caller) -> list[ListedPlugin]:
    """The caller's plugins by name: a few statements however many plugins."""
    with db.session() as session:
        plugins = plugin_store.list_plugins(session, caller.tenant_id)
        projects = activation_store.projects_by_plugin(session, tenant_id=caller.tenant_id)
    return [ListedPlugin(plugin, projects.get(plugin.id, [])) for plugin in plugins]


def listed_plugin(db: Database, caller: Caller, name: str) -> ListedPlugin:
    """The caller's plugin ``name`` (NotFound for no such plugin)."""
    with db.session() as session:
        found = plugin_store.get_plugin(session, caller.tenant_id, name)
        projects = activation_store.projects_by_plugin(session, plugin_id=found.id)
    return ListedPlugin(found, projects.get(found.id, []))


def plugin(db: Database, caller: Caller, name: str) -> Plugin:
    """The caller's plugin ``name`` with its versions (NotFound for no such plugin)."""
    with db.session() as session:
        return plugin_store.get_plugin(session, caller.tenant_id, name)


def version_id(db: Database, caller: Caller, name: str, number: int) -> str:
    """The id of version ``number`` of the caller's plugin ``name`` (NotFound if none)."""
    with db.session() as session:
        found = plugin_store.get_plugin(session, caller.tenant_id, name)
        return version_store.version_by_number(session, found, number).id


@dataclass(frozen=True)
class BuildLog:
    """A version and its build log."""

    version: PluginVersion
    log: str


def build_log(db: Database, caller: Caller, name: str, number: int) -> BuildLog:
    """Version ``number`` of the caller's plugin ``name`` with its build log."""
    with db.session() as session:
        found = plugin_store.get_plugin(session, caller.tenant_id, name)
        version = version_store.version_by_number(session, found, number)
        return BuildLog(version, version_store.build_progress(session, version.id).log)


def plugin_overviews(db: Database, caller: Caller) -> list[PluginOverview]:
    """The caller's plugins by name."""
    overviews = []
    for listed in listed_plugins(db, caller):
        versions = listed.plugin.versions
        latest = versions[-1] if versions else None
        overviews.append(
            PluginOverview(
                id=listed.plugin.id,
                name=listed.plugin.name,
                project_ids=listed.project_ids,
                created_at=listed.plugin.created_at,
                updated_at=latest.created_at if latest else listed.plugin.created_at,
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
            lines = version_store.build_progress(session, version.id).log.splitlines()
            if version.error:
                lines.append(version.error)
            errors.extend(BuildError(version.number, line, at) for line in lines if line)
    return errors


def log_page(
    db: Database,
    where: log_store.LogFilter,
    limit: int,
    skip: int,
    after_id: int | None = None,
    order: log_store.Order = "asc",
) -> list[LogRecord]:
    """One page of log records, oldest first (``order="desc"``: newest first), after the
    record ``after_id`` of a cursor (rows stay readable after the session)."""
    with db.session() as session:
        return log_store.query_page(
            session, where, limit=limit, skip=skip, after_id=after_id, order=order
        )


def backlog_start(db: Database, where: log_store.LogFilter, backlog: int) -> int:
    """The record id a stream starts after to send the ``backlog`` latest matching records
    first (0: only records stored from now on)."""
    with db.session() as session:
        if backlog == 0:
            return log_store.last_id(session)
        latest = log_store.query_page(session, where, limit=backlog, order="desc")
        return latest[-1].id - 1 if latest else log_store.last_id(session)


def logs_after(
    db: Database, where: log_store.LogFilter, after_id: int, limit: int
) -> tuple[list[LogRecord], bool | None]:
    """Up to ``limit`` records after ``after_id`` and, for one run, whether it had ended
    before the read."""
    with db.session() as session:
        ended: bool | None = None
        if where.run_id is not None:
            # Checked before reading: a run's records are all stored before it is finished,
            # so "ended, and nothing new" means the stream has everything.
            invocation = query_store.find_invocation(session, where.run_id)
            ended = invocation is None or invocation.status in TERMINAL_STATUSES
        return log_store.records_after(session, where, after_id, limit), ended


def build_progress(db: Database, version_id: str) -> version_store.BuildProgress:
    """A version's build log, status and error (its source is not read)."""
    with db.session() as session:
        return version_store.build_progress(session, version_id)
