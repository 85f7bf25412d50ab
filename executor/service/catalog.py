"""Plugin management: new versions from uploads, and activations on projects."""

from __future__ import annotations

import re
from typing import Protocol

from executor.build.builder import Builder
from executor.errors import PluginRejected
from executor.intake.upload import UploadLimits, read_upload, source_archive
from executor.run.limits import PluginLimits, check_limits
from executor.settings import SandboxProfile
from executor.store import invocations as invocation_store
from executor.store import plugins as plugin_store
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import Activation, Plugin, PluginVersion
from executor.tenancy.access import Caller
from executor.tenancy.quotas import quotas_for

__all__ = ["NAME_PATTERN", "Catalog", "activation_events", "check_name"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# on_event only runs for events an activation names explicitly (e.g. "asset.*").
EXPLICIT_ONLY_HANDLERS = frozenset({"onEvent"})


def check_name(name: str) -> str:
    """``name`` if it is a valid plugin name, else PluginRejected saying what is allowed."""
    if not NAME_PATTERN.match(name):
        raise PluginRejected(
            f"plugin name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit"
        )
    return name


class _Matcher(Protocol):
    @property
    def event_matcher(self) -> list[str] | None: ...


class _Handlers(Protocol):
    @property
    def handlers(self) -> list[str]: ...


def activation_events(activation: _Matcher, version: _Handlers | None) -> list[str]:
    """The event types (or globs) an activation runs on: its matcher, or the handler types.

    ``activation`` and ``version`` are rows (``Activation``, ``PluginVersion``) or the
    lighter records event ingest reads (``executor.store.ingest``)."""
    if activation.event_matcher is not None:
        return list(activation.event_matcher)
    handlers = version.handlers if version is not None else []
    return [h for h in handlers if h not in EXPLICIT_ONLY_HANDLERS]


class Catalog:
    """Uploads become versions that the builder builds in the background.

    Every method acts for a ``Caller``, on its tenant's plugins and projects only.
    """

    def __init__(self, db: Database, builder: Builder) -> None:
        self.db = db
        self.builder = builder

    def upload(self, caller: Caller, name: str, filename: str, data: bytes) -> PluginVersion:
        """Check the upload statically, store it as the plugin's next version, start its build."""
        check_name(name)
        limits = UploadLimits(
            allow_url_requirements=self.builder.settings.build_allow_url_requirements
        )
        source = read_upload(filename, data, limits)

        with self.db.session() as session:
            quotas = quotas_for(
                tenant_store.get_tenant(session, caller.tenant_id), self.builder.settings
            )
            version = plugin_store.add_version(
                session,
                caller.tenant_id,
                name,
                max_plugins=quotas.max_plugins,
                max_versions=quotas.max_versions,
                handlers=list(source.handlers),
                requirements=source.requirements,
                source_sha256=source.sha256,
                source=source_archive(source),
            )
        self.builder.submit(version.id)
        return version

    def activate(
        self,
        caller: Caller,
        name: str,
        project_id: str,
        events: list[str] | None,
        version: int | None = None,
        max_retries: int = 0,
    ) -> Activation:
        """Activate on a project; ``version`` pins an ACTIVE version (None: follow current);
        ``max_retries`` retries plugin failures. The operator's first activation on a
        project gives the project to the tenant it acts on."""
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            tenant_store.owned_project(
                session, project_id, caller.tenant_id, may_claim=caller.is_operator
            )
            return plugin_store.set_activation(
                session, plugin, project_id, events, version, max_retries
            )

    def rollback(self, caller: Caller, name: str) -> tuple[int, int]:
        """Make the ACTIVE version before the current one current: (new, previous) numbers."""
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            before = plugin_store.current_version(plugin)
            after = plugin_store.rollback(session, plugin)
            return after.number, before.number if before else after.number

    def deactivate(self, caller: Caller, name: str, project_id: str) -> None:
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            plugin_store.delete_activation(session, plugin, project_id)

    def set_limits(
        self, caller: Caller, name: str, limits: PluginLimits, profile: SandboxProfile
    ) -> Plugin:
        """Replace a plugin's sandbox overrides (LimitExceeded past the operator's maxima).

        Unset fields mean the operator's value; an empty ``limits`` clears every override.
        Runs claimed from now on get the new limits.
        """
        overrides = check_limits(limits, profile).model_dump(exclude_none=True)
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            plugin.limits = overrides or None
            return plugin

    def delete(self, caller: Caller, name: str) -> Plugin:
        """Delete the plugin, its versions and activations; the name is free at once.

        Its runs stay (with their logs and gateway calls) until retention purges them;
        those still queued end ``canceled``.
        """
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            invocation_store.plugin_deleted(session, plugin)
            plugin_store.delete_plugin(session, plugin)
            return plugin
