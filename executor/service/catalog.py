"""Plugin management: activations on projects, rollbacks, limits and deletion."""

from __future__ import annotations

from typing import Protocol

from executor.errors import checked_identifier
from executor.identifiers import IdKind
from executor.run.limits import PluginLimits, check_limits
from executor.schemas.plugins import ActivationIn, ActivationPublic, RolledBack
from executor.service.audit import record
from executor.settings import SandboxProfile
from executor.store import activations as activation_store
from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import queue as queue_store
from executor.store import tenants as tenant_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import Activation, Plugin
from executor.tenancy.access import Caller

__all__ = ["Catalog", "activation_events", "describe_activation"]

# Ended runs of a version a rollback looks at to warn that most of them failed.
RECENT_RUNS = 20
# on_event only runs for events an activation names explicitly (e.g. "asset.*").
EXPLICIT_ONLY_HANDLERS = frozenset({"onEvent"})


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


def describe_activation(activation: Activation) -> ActivationPublic:
    """An activation as the API shows it (reads its plugin's versions: call in a session)."""
    version = activation_store.activation_version(activation)
    return ActivationPublic(
        plugin=activation.plugin.name,
        project_id=activation.project_id,
        events=activation_events(activation, version),
        events_default=activation.event_matcher is None,
        max_retries=activation.max_retries,
        pinned_version=activation.version_number,
        runs_version=version.number if version else None,
        runtime=activation.runtime,
        node_selector=activation.node_selector,
        created_at=activation.created_at,
    )


class Catalog:
    """Activations on projects, the version each plugin serves, its limits, its deletion
    (uploads: ``executor.service.uploads``).

    Every method is one use case: it acts for a ``Caller``, on its tenant's plugins and
    projects only, and records the change in the audit trail in the same transaction.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def activate(
        self, caller: Caller, name: str, project_id: str, body: ActivationIn
    ) -> ActivationPublic:
        """Activate on a project as ``body`` says: its ``version`` pins an ACTIVE version
        (None: follow current), ``max_retries`` retries plugin failures, ``runtime`` and
        ``node_selector`` place its runs. The operator's first activation on a project
        gives the project to the tenant it acts on."""
        checked_identifier(IdKind.PROJECT, project_id, "project_id")
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            tenant_store.owned_project(
                session, project_id, caller.tenant_id, may_claim=caller.is_operator
            )
            activation = activation_store.set_activation(
                session,
                plugin,
                project_id,
                body.events,
                body.version,
                body.max_retries,
                placement=(body.runtime, body.node_selector),
            )
            record(session, caller, "plugin.activate", name, detail={"project_id": project_id})
            return describe_activation(activation)

    def rollback(self, caller: Caller, name: str, to: int | None = None) -> RolledBack:
        """Make version ``to`` current (older or newer), or with None the ACTIVE one before
        the current one; says how its latest ended runs went, with a warning when most
        failed (the change is made all the same: the caller chose it)."""
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            before = version_store.current_version(plugin)
            after = version_store.rollback(session, plugin, to)
            previous = before.number if before else after.number
            outcomes = query_store.recent_outcomes(
                session, caller.tenant_id, name, after.id, RECENT_RUNS
            )
            record(
                session,
                caller,
                "plugin.rollback",
                name,
                detail={"from": previous, "to": after.number},
            )
        warning = None
        if outcomes.failed * 2 > outcomes.runs:
            warning = (
                f"v{after.number} failed {outcomes.failed} of its last {outcomes.runs} "
                "ended runs: check its logs (plugin-executor runs) before relying on it"
            )
        return RolledBack(
            plugin=name,
            current_version=after.number,
            previous_version=previous,
            recent_runs=outcomes.runs,
            recent_failures=outcomes.failed,
            warning=warning,
        )

    def deactivate(self, caller: Caller, name: str, project_id: str) -> None:
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            activation_store.delete_activation(session, plugin, project_id)
            record(session, caller, "plugin.deactivate", name, detail={"project_id": project_id})

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
            record(session, caller, "plugin.limits", name, detail=plugin.limits)
            return plugin

    def delete(self, caller: Caller, name: str) -> Plugin:
        """Delete the plugin, its versions and activations; the name is free at once.

        Its runs stay (with their logs and gateway calls) until retention purges them;
        those still queued end ``canceled``.
        """
        with self.db.session() as session:
            plugin = plugin_store.get_plugin(session, caller.tenant_id, name)
            queue_store.plugin_deleted(session, plugin)
            plugin_store.delete_plugin(session, plugin)
            record(session, caller, "plugin.delete", name)
            return plugin
