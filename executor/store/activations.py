"""Activations: a plugin on a project, the version its events run, and the projects of
many plugins at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from executor.errors import Conflict, NotFound
from executor.store.tables import Activation, Plugin, PluginVersion
from executor.store.versions import is_runnable, pick_version, version_by_number

__all__ = [
    "activation_version",
    "delete_activation",
    "list_activations",
    "projects_by_plugin",
    "set_activation",
]


def set_activation(
    session: Session,
    plugin: Plugin,
    project_id: str,
    events: list[str] | None,
    version_number: int | None = None,
    max_retries: int = 0,
    placement: tuple[str | None, dict[str, str] | None] = (None, None),
) -> Activation:
    """Activate ``plugin`` on ``project_id`` (or update its event matcher and pin).

    ``version_number`` pins a version, which must be ACTIVE; None follows the current one.
    ``placement`` is the OCI runtime its runs need and the node selector (None: any).
    """
    if version_number is not None:
        pinned = version_by_number(session, plugin, version_number)
        if not is_runnable(pinned):
            raise Conflict(
                f"plugin {plugin.name!r} v{version_number} is {pinned.status}"
                f"{' (image removed)' if pinned.image_removed_at else ''}: only an ACTIVE "
                "version can be pinned"
            )
    activation = session.scalar(
        select(Activation).where(
            Activation.plugin_id == plugin.id, Activation.project_id == project_id
        )
    )
    if activation is None:
        activation = Activation(plugin_id=plugin.id, project_id=project_id)
        session.add(activation)
    activation.event_matcher = events
    activation.version_number = version_number
    activation.max_retries = max_retries
    activation.runtime, activation.node_selector = placement
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


def activation_version(activation: Activation) -> PluginVersion | None:
    """The version an event runs for this activation: its pin, else the plugin's current."""
    plugin = activation.plugin
    return pick_version(plugin.versions, plugin.current_version_id, activation.version_number)


def projects_by_plugin(
    session: Session, *, tenant_id: str | None = None, plugin_id: str | None = None
) -> dict[str, list[str]]:
    """The projects each plugin of ``tenant_id`` (None: of every tenant), or the one
    ``plugin_id``, is active on, oldest activation first: one statement however many
    plugins. A plugin active nowhere has no key."""
    query = select(Activation.plugin_id, Activation.project_id)
    if tenant_id is not None:
        query = query.join(Plugin, Plugin.id == Activation.plugin_id)
        query = query.where(Plugin.tenant_id == tenant_id)
    if plugin_id is not None:
        query = query.where(Activation.plugin_id == plugin_id)
    projects: dict[str, list[str]] = {}
    for plugin, project in session.execute(query.order_by(Activation.created_at)).all():
        projects.setdefault(plugin, []).append(project)
    return projects
