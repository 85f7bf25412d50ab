"""A plugin's versions: which one runs (current, pinned, rolled back to), their builds'
progress and outcome."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from executor.errors import Conflict, NotFound
from executor.statuses import BuildStatus
from executor.store.tables import Plugin, PluginVersion, utcnow

__all__ = [
    "BuildProgress",
    "VersionFacts",
    "build_progress",
    "current_version",
    "get_version",
    "is_runnable",
    "pick_version",
    "rollback",
    "serve",
    "unfinished_builds",
    "update_build",
    "version_by_number",
    "version_to_build",
]


def serve(session: Session, version: PluginVersion) -> None:
    """Make an ACTIVE ``version`` current (the newest runnable: follow the newest again)."""
    plugin = version.plugin
    newest = max((v for v in plugin.versions if is_runnable(v)), key=lambda v: v.number)
    plugin.current_version_id = None if version.id == newest.id else version.id
    session.flush()


def get_version(session: Session, version_id: str) -> PluginVersion:
    version = session.get(PluginVersion, version_id)
    if version is None:
        raise NotFound(f"no plugin version {version_id!r}")
    return version


def version_to_build(session: Session, version_id: str) -> PluginVersion:
    """A version with its source and build log loaded (the builder needs both: the source
    to build, the log to continue after a restart)."""
    version = session.scalar(
        select(PluginVersion)
        .where(PluginVersion.id == version_id)
        .options(undefer(PluginVersion.source), undefer(PluginVersion.build_log))
    )
    if version is None:
        raise NotFound(f"no plugin version {version_id!r}")
    return version


class BuildProgress(NamedTuple):
    log: str
    status: str
    error: str | None


def build_progress(session: Session, version_id: str) -> BuildProgress:
    """A version's build log, status and error, without its source."""
    row = session.execute(
        select(PluginVersion.build_log, PluginVersion.status, PluginVersion.error).where(
            PluginVersion.id == version_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no plugin version {version_id!r}")
    return BuildProgress(*row)


def version_by_number(session: Session, plugin: Plugin, number: int) -> PluginVersion:
    for version in plugin.versions:
        if version.number == number:
            return version
    raise NotFound(
        f"plugin {plugin.name!r} has no version {number}: see GET /v1/plugins/{plugin.name}"
    )


class VersionFacts(Protocol):
    """What choosing the version an event runs reads of a version: a ``PluginVersion``,
    or a lighter record of one (``executor.store.ingest``)."""

    @property
    def id(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def image_removed_at(self) -> datetime | None: ...


V = TypeVar("V", bound=VersionFacts)


def is_runnable(version: VersionFacts) -> bool:
    """ACTIVE and its image still kept (the GC has not removed it)."""
    return version.status == BuildStatus.ACTIVE and version.image_removed_at is None


def pick_version(
    versions: Iterable[V], current_version_id: str | None, pinned: int | None
) -> V | None:
    """The version an activation runs among its plugin's ``versions``: the ``pinned``
    number; unpinned, the one a rollback chose (``current_version_id``), else the newest
    runnable one. Only a runnable version is chosen."""
    runnable = [v for v in versions if is_runnable(v)]
    if pinned is not None:
        return next((v for v in runnable if v.number == pinned), None)
    chosen = next((v for v in runnable if v.id == current_version_id), None)
    return chosen or max(runnable, key=lambda v: v.number, default=None)


def current_version(plugin: Plugin) -> PluginVersion | None:
    """The version unpinned activations run: the one a rollback chose, else the newest
    runnable one."""
    return pick_version(plugin.versions, plugin.current_version_id, None)


def rollback(session: Session, plugin: Plugin, to: int | None = None) -> PluginVersion:
    """Make version ``to`` current (older or newer: rollback or roll forward), or, with
    None, the ACTIVE version before the current one. Conflict if there is none, if ``to``
    cannot run or is current already; NotFound if the plugin has no version ``to``."""
    current = current_version(plugin)
    if to is not None:
        target = _runnable_target(session, plugin, to, current)
    else:
        target = _previous(plugin, current)
    serve(session, target)
    return target


def _runnable_target(
    session: Session, plugin: Plugin, to: int, current: PluginVersion | None
) -> PluginVersion:
    target = version_by_number(session, plugin, to)
    if not is_runnable(target):
        removed = " (image removed)" if target.image_removed_at else ""
        raise Conflict(
            f"plugin {plugin.name!r} v{to} is {target.status}{removed}: only an ACTIVE "
            "version can serve; see plugin-executor versions"
        )
    if current is not None and current.id == target.id:
        raise Conflict(f"plugin {plugin.name!r} already serves v{to}: nothing to change")
    return target


def _previous(plugin: Plugin, current: PluginVersion | None) -> PluginVersion:
    if current is None:
        raise Conflict(f"plugin {plugin.name!r} has no ACTIVE version: nothing to roll back")
    older = [v for v in plugin.versions if is_runnable(v) and v.number < current.number]
    if not older:
        raise Conflict(
            f"plugin {plugin.name!r} has no ACTIVE version before v{current.number} to roll "
            "back to: upload a fixed version instead"
        )
    return max(older, key=lambda v: v.number)


def update_build(
    session: Session,
    version_id: str,
    *,
    log: str,
    status: BuildStatus | None = None,
    image_id: str | None = None,
    image_tag: str | None = None,
    image_digest: str | None = None,
    error: str | None = None,
    freeze: str | None = None,
) -> None:
    """Save build progress; a status other than DEPLOYING also stamps ``finished_at``.

    A version that becomes ACTIVE becomes its plugin's current one (ending a rollback).
    """
    version = get_version(session, version_id)
    version.build_log = log
    if status is not None:
        version.status = status
        version.image_id = image_id
        version.image_tag = image_tag
        version.image_digest = image_digest
        version.error = error
        version.pip_freeze = freeze
        if status != BuildStatus.DEPLOYING:
            version.finished_at = utcnow()
        if status == BuildStatus.ACTIVE:
            plugin = session.get(Plugin, version.plugin_id)  # read here, never lazily
            if plugin is not None:  # deleted meanwhile: nothing to make current
                plugin.current_version_id = None


def unfinished_builds(session: Session) -> list[str]:
    """Ids of versions still DEPLOYING (after a restart their builds must run again)."""
    return list(
        session.scalars(
            select(PluginVersion.id)
            .where(PluginVersion.status == BuildStatus.DEPLOYING)
            .order_by(PluginVersion.created_at)
        )
    )
