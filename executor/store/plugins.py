"""Queries on plugins, their versions and their activations."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from executor.errors import NotFound
from executor.store.tables import Activation, Plugin, PluginVersion, utcnow

__all__ = [
    "add_version",
    "current_version",
    "delete_activation",
    "get_plugin",
    "get_version",
    "list_activations",
    "list_plugins",
    "set_activation",
    "unfinished_builds",
    "update_build",
]


def get_plugin(session: Session, name: str) -> Plugin:
    """The plugin named ``name`` with its versions; NotFound if there is none."""
    plugin = session.scalar(
        select(Plugin).where(Plugin.name == name).options(selectinload(Plugin.versions))
    )
    if plugin is None:
        raise NotFound(f"no plugin named {name!r}: upload it first (plugin-executor push)")
    return plugin


def list_plugins(session: Session) -> list[Plugin]:
    return list(
        session.scalars(select(Plugin).order_by(Plugin.name).options(selectinload(Plugin.versions)))
    )


def add_version(
    session: Session,
    name: str,
    *,
    handlers: list[str],
    requirements: str,
    source_sha256: str,
    source: bytes,
) -> PluginVersion:
    """Create the plugin if needed and add its next version, status DEPLOYING."""
    plugin = session.scalar(select(Plugin).where(Plugin.name == name))
    if plugin is None:
        plugin = Plugin(name=name)
        session.add(plugin)
        session.flush()
    last = session.scalar(
        select(func.max(PluginVersion.number)).where(PluginVersion.plugin_id == plugin.id)
    )
    version = PluginVersion(
        plugin_id=plugin.id,
        number=(last or 0) + 1,
        status="DEPLOYING",
        handlers=handlers,
        requirements=requirements,
        source_sha256=source_sha256,
        source=source,
    )
    session.add(version)
    session.flush()
    return version


def get_version(session: Session, version_id: str) -> PluginVersion:
    version = session.get(PluginVersion, version_id)
    if version is None:
        raise NotFound(f"no plugin version {version_id!r}")
    return version


def version_by_number(session: Session, plugin: Plugin, number: int) -> PluginVersion:
    for version in plugin.versions:
        if version.number == number:
            return version
    raise NotFound(
        f"plugin {plugin.name!r} has no version {number}: see GET /v1/plugins/{plugin.name}"
    )


def current_version(plugin: Plugin) -> PluginVersion | None:
    """The version events run: the newest ACTIVE one."""
    active = [v for v in plugin.versions if v.status == "ACTIVE"]
    return max(active, key=lambda v: v.number) if active else None


def update_build(
    session: Session,
    version_id: str,
    *,
    log: str,
    status: str | None = None,
    image_id: str | None = None,
    image_tag: str | None = None,
    error: str | None = None,
) -> None:
    """Save build progress; a status other than DEPLOYING also stamps ``finished_at``."""
    version = get_version(session, version_id)
    version.build_log = log
    if status is not None:
        version.status = status
        version.image_id = image_id
        version.image_tag = image_tag
        version.error = error
        if status != "DEPLOYING":
            version.finished_at = utcnow()


def unfinished_builds(session: Session) -> list[str]:
    """Ids of versions still DEPLOYING (after a restart their builds must run again)."""
    return list(
        session.scalars(
            select(PluginVersion.id)
            .where(PluginVersion.status == "DEPLOYING")
            .order_by(PluginVersion.created_at)
        )
    )


def set_activation(
    session: Session,
    plugin: Plugin,
    project_id: str,
    events: list[str] | None,
    max_retries: int = 0,
) -> Activation:
    """Activate ``plugin`` on ``project_id`` (or update its event matcher)."""
    activation = session.scalar(
        select(Activation).where(
            Activation.plugin_id == plugin.id, Activation.project_id == project_id
        )
    )
    if activation is None:
        activation = Activation(plugin_id=plugin.id, project_id=project_id)
        session.add(activation)
    activation.event_matcher = events
    activation.max_retries = max_retries
    session.flush()
    return activation


def delete_activation(session: Session, plugin: Plugin, project_id: str) -> None:
    activation = session.scalar(
        select(Activation).where(
            Activation.plugin_id == plugin.id, Activation.project_id == project_id
        )
    )
    if activation is None:
        raise NotFound(f"plugin {plugin.name!r} is not active on project {project_id!r}")
    session.delete(activation)


def list_activations(
    session: Session, *, project_id: str | None = None, plugin_id: str | None = None
) -> list[Activation]:
    query = select(Activation).options(
        selectinload(Activation.plugin).selectinload(Plugin.versions)
    )
    if project_id is not None:
        query = query.where(Activation.project_id == project_id)
    if plugin_id is not None:
        query = query.where(Activation.plugin_id == plugin_id)
    return list(session.scalars(query.order_by(Activation.created_at)))
