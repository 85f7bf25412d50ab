"""Rows the store tests start from: one plugin version, one event and a run of it."""

from __future__ import annotations

from typing import Any

from executor.store.db import Database
from executor.store.tables import Event, Invocation, Plugin, PluginVersion


def add_run(db: Database, project_id: str = "pr", **fields: Any) -> Invocation:
    """A new plugin ``p`` v1, an onSubmit event on ``project_id`` and an invocation of it
    (queued unless ``fields`` say otherwise), committed."""
    with db.session() as session:
        plugin = Plugin(name="p")
        session.add(plugin)
        session.flush()
        version = PluginVersion(plugin_id=plugin.id, number=1, source_sha256="x", source=b"")
        event = Event(type="onSubmit", project_id=project_id)
        session.add_all([version, event])
        session.flush()
        run = Invocation(
            event_id=event.id,
            plugin_id=plugin.id,
            version_id=version.id,
            plugin_name="p",
            version_number=1,
            project_id=project_id,
            event_type="onSubmit",
            **fields,
        )
        session.add(run)
        session.flush()
        return run


def add_version(db: Database, name: str = "p") -> str:
    """A new plugin ``name`` and its v1, DEPLOYING (being built), committed; its id."""
    with db.session() as session:
        plugin = Plugin(name=name)
        session.add(plugin)
        session.flush()
        version = PluginVersion(plugin_id=plugin.id, number=1, source_sha256="x", source=b"")
        session.add(version)
        session.flush()
        return version.id
