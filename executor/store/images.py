"""Version images: the ones activations run now (kept warm, pulled ahead), the ones the
image GC may remove, and marking one removed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from executor.statuses import InvocationStatus
from executor.store.activations import activation_version, list_activations
from executor.store.plugins import list_plugins
from executor.store.tables import Invocation, PluginVersion, utcnow
from executor.store.versions import current_version, get_version

__all__ = [
    "active_versions",
    "gc_candidates",
    "mark_image_removed",
]


def active_versions(session: Session) -> list[PluginVersion]:
    """Each version some activation's events run now (no duplicates), with its plugin."""
    versions: dict[str, PluginVersion] = {}
    for activation in list_activations(session):
        version = activation_version(activation)
        if version is not None and version.image_tag:
            # Its plugin, as loaded with the activation: loading a plugin's versions does not
            # fill their ``plugin``, and the session may have let go of the plugin by the time
            # the caller reads it (the identity map holds rows weakly).
            set_committed_value(version, "plugin", activation.plugin)
            versions.setdefault(version.id, version)
    return list(versions.values())


def gc_candidates(session: Session, keep: int) -> list[PluginVersion]:
    """Versions whose image may be removed: not among their plugin's ``keep`` newest, and
    not in use (pinned by an activation, current, or wanted by a queued or running
    invocation)."""
    in_use = set(
        session.scalars(
            select(Invocation.version_id).where(
                Invocation.status.in_((InvocationStatus.QUEUED, InvocationStatus.RUNNING))
            )
        )
    )
    for activation in list_activations(session):
        version = activation_version(activation)
        if version is not None:
            in_use.add(version.id)
    candidates: list[PluginVersion] = []
    for plugin in list_plugins(session, None):
        current = current_version(plugin)
        if current is not None:
            in_use.add(current.id)
        newest_first = sorted(plugin.versions, key=lambda v: v.number, reverse=True)
        candidates += [
            v
            for v in newest_first[keep:]
            if v.image_tag and v.image_removed_at is None and v.id not in in_use
        ]
    return candidates


def mark_image_removed(session: Session, version_id: str) -> None:
    get_version(session, version_id).image_removed_at = utcnow()
