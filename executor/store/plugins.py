"""Plugins: finding one by name, listing them, adding a version (and the plugin with its
first), deleting one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from executor.errors import Conflict, NameTaken, NotFound, QuotaExceeded
from executor.identifiers import plugin_name_key
from executor.statuses import BuildStatus, PluginKind
from executor.store.tables import Plugin, PluginVersion

__all__ = [
    "add_version",
    "check_name_free",
    "delete_plugin",
    "find_plugin",
    "get_plugin",
    "list_plugins",
    "same_name",
    "same_source",
]


def get_plugin(session: Session, tenant_id: str, name: str) -> Plugin:
    """The tenant's plugin named ``name`` with its versions; NotFound if there is none."""
    plugin = session.scalar(
        select(Plugin)
        .where(Plugin.tenant_id == tenant_id, Plugin.name == name)
        .options(selectinload(Plugin.versions))
    )
    if plugin is None:
        other = same_name(session, tenant_id, name)
        if other is not None:  # names are exact: say which one was meant
            raise NotFound(f"no plugin named {name!r}; did you mean {other.name!r}?")
        raise NotFound(f"no plugin named {name!r}: upload it first (plugin-executor push)")
    return plugin


def same_name(session: Session, tenant_id: str, name: str) -> Plugin | None:
    """The tenant's plugin whose name is ``name`` up to case and Unicode form (its
    ``plugin_name_key``), whatever its exact name; None if there is none."""
    return session.scalar(
        select(Plugin).where(
            Plugin.tenant_id == tenant_id, Plugin.name_key == plugin_name_key(name)
        )
    )


def check_name_free(session: Session, tenant_id: str, name: str) -> None:
    """NameTaken when another plugin of the tenant has ``name`` up to case and form."""
    other = same_name(session, tenant_id, name)
    if other is not None and other.name != name:
        raise NameTaken(name, other.name)


def list_plugins(session: Session, tenant_id: str | None) -> list[Plugin]:
    """The tenant's plugins by name (``tenant_id`` None: every tenant's)."""
    query = select(Plugin).order_by(Plugin.name).options(selectinload(Plugin.versions))
    if tenant_id is not None:
        query = query.where(Plugin.tenant_id == tenant_id)
    return list(session.scalars(query))


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(query) or 0)


def add_version(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    max_plugins: int,
    max_versions: int,
    handlers: list[str],
    requirements: str,
    source_sha256: str,
    source: bytes,
    runtime: str,
    kind: PluginKind = PluginKind.CODE,
) -> PluginVersion:
    """Create the tenant's plugin (of ``kind``) if needed and add its next version, status
    DEPLOYING.

    QuotaExceeded when the tenant has ``max_plugins`` plugins, or the plugin ``max_versions``
    versions (the tenant's quotas); Conflict when the name is a plugin of another kind;
    NameTaken when another plugin has the name but for case or Unicode form.
    """
    plugin = session.scalar(
        select(Plugin).where(Plugin.tenant_id == tenant_id, Plugin.name == name)
    )
    if plugin is None:
        plugins = _count(session, select(func.count()).where(Plugin.tenant_id == tenant_id))
        if plugins >= max_plugins:
            raise QuotaExceeded(
                f"tenant {tenant_id!r} has {plugins} plugins, its quota: delete one first",
                quota="max_plugins",
                limit=max_plugins,
            )
        check_name_free(session, tenant_id, name)
        plugin = Plugin(tenant_id=tenant_id, name=name, kind=kind)
        session.add(plugin)
        try:
            session.flush()
        except IntegrityError as error:  # the unique indexes: a request at the same time won
            raise Conflict(
                f"another request created a plugin named {name!r} (or that name but for case "
                "or Unicode form) at the same time: send again to see which"
            ) from error
    elif plugin.kind != kind:
        raise Conflict(
            f"{name!r} is a {plugin.kind} plugin, not a {kind} one: choose another name, or "
            "delete it first"
        )
    versions = _count(session, select(func.count()).where(PluginVersion.plugin_id == plugin.id))
    if versions >= max_versions:
        raise QuotaExceeded(
            f"plugin {name!r} has {versions} versions, its tenant's quota: delete the plugin "
            "or ask the operator for a larger quota",
            quota="max_versions",
            limit=max_versions,
        )
    last = session.scalar(
        select(func.max(PluginVersion.number)).where(PluginVersion.plugin_id == plugin.id)
    )
    version = PluginVersion(
        plugin_id=plugin.id,
        number=(last or 0) + 1,
        status=BuildStatus.DEPLOYING,
        handlers=handlers,
        requirements=requirements,
        source_sha256=source_sha256,
        source=source,
        runtime=runtime,
    )
    session.add(version)
    session.flush()
    return version


def same_source(
    session: Session, tenant_id: str, name: str, source_sha256: str, runtime: str
) -> PluginVersion | None:
    """The code plugin's newest version built, or being built, from the same files for the
    same runtime flavor, whose image can still run; None if there is none. It comes with
    its plugin and the plugin's versions (serving it reads them)."""
    candidates = session.scalars(
        select(PluginVersion)
        .join(Plugin, PluginVersion.plugin_id == Plugin.id)
        .options(selectinload(PluginVersion.plugin).selectinload(Plugin.versions))
        .where(
            Plugin.tenant_id == tenant_id,
            Plugin.name == name,
            Plugin.kind == PluginKind.CODE,
            PluginVersion.source_sha256 == source_sha256,
            PluginVersion.runtime == runtime,
            PluginVersion.status.in_((BuildStatus.ACTIVE, BuildStatus.DEPLOYING)),
            PluginVersion.image_removed_at.is_(None),
        )
        .order_by(PluginVersion.number.desc())
    )
    return next(iter(candidates), None)


def find_plugin(session: Session, plugin_id: str) -> Plugin | None:
    """The plugin by id with its versions, or None when it was deleted."""
    return session.get(Plugin, plugin_id, options=[selectinload(Plugin.versions)])


def delete_plugin(session: Session, plugin: Plugin) -> None:
    """Delete the plugin with its versions and activations (its runs are not its rows)."""
    session.delete(plugin)
