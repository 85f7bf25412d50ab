"""Plugin management: new versions from uploads, and activations on projects."""

from __future__ import annotations

from typing import Protocol

from executor.build.builder import Builder
from executor.build.flavors import Flavor, describe_flavors
from executor.errors import checked_identifier
from executor.identifiers import IdKind
from executor.intake.checker import UploadChecker
from executor.intake.manifest import choose_flavor
from executor.intake.upload import UploadLimits, source_archive
from executor.run.limits import PluginLimits, check_limits
from executor.schemas.plugins import ActivationIn, ActivationPublic, RolledBack
from executor.service.audit import record
from executor.settings import SandboxProfile
from executor.statuses import BuildStatus
from executor.store import activations as activation_store
from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import queue as queue_store
from executor.store import tenants as tenant_store
from executor.store import versions as version_store
from executor.store.db import Database
from executor.store.tables import Activation, Plugin, PluginVersion
from executor.tenancy.access import Caller
from executor.tenancy.quotas import quotas_for
from executor.tenancy.ratelimit import Limiter

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
    """Uploads become versions that the builder builds in the background.

    Every method is one use case: it acts for a ``Caller``, on its tenant's plugins and
    projects only, and records the change in the audit trail in the same transaction.
    """

    def __init__(
        self, db: Database, builder: Builder, limiter: Limiter, checker: UploadChecker
    ) -> None:
        self.db = db
        self.builder = builder
        self.limiter = limiter
        self.checker = checker

    def upload(
        self, caller: Caller, name: str, filename: str, data: bytes, runtime: str | None = None
    ) -> PluginVersion:
        """``upload_or_reuse``'s version."""
        return self.upload_or_reuse(caller, name, filename, data, runtime)[0]

    def upload_or_reuse(
        self, caller: Caller, name: str, filename: str, data: bytes, runtime: str | None = None
    ) -> tuple[PluginVersion, bool]:
        """Check the upload statically, store it as the plugin's next version, start its build.

        The same files for the same runtime flavor as a version that is ACTIVE (image kept)
        or still building make no new version and no build: that version is reused (and
        made current when ACTIVE, as a new one would be); the second item says so.

        ``runtime`` (the upload's form field) names its flavor, before plugin.toml's.
        Blocking (waiting for a check worker, the check, a write): callers on an event loop
        run it in a thread. The upload-bytes rate counts what the upload unpacks to (at
        least its own size), charged once the check counted it.
        """
        if caller.key_id is not None:
            self.limiter.upload(caller.key_id, len(data))
        name = checked_identifier(IdKind.PLUGIN, name, "name")
        settings = self.builder.settings
        limits = UploadLimits(
            max_file_bytes=settings.upload_max_file_bytes,
            allow_url_requirements=settings.build_allow_url_requirements,
            allow_requirements=settings.build_allow_requirements,
        )
        checked = self.checker.check(caller.tenant_id, filename, data, limits)
        if caller.key_id is not None and checked.unpacked_bytes > len(data):
            self.limiter.upload(caller.key_id, checked.unpacked_bytes - len(data))
        source = checked.result()
        flavor = choose_flavor(runtime, source.runtime, settings.runtime_default_flavor)

        with self.db.session() as session:
            same = plugin_store.same_source(session, caller.tenant_id, name, source.sha256, flavor)
            if same is not None:
                if same.status == BuildStatus.ACTIVE:
                    version_store.serve(session, same)
                record(
                    session,
                    caller,
                    "plugin.upload",
                    name,
                    detail={"version": same.number, "reused": True},
                )
                return same, True
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
                runtime=flavor,
            )
            record(session, caller, "plugin.upload", name, detail={"version": version.number})
        self.builder.submit(version.id)
        return version, False

    def runtimes(self) -> list[Flavor]:
        """The runtime flavors, with their package versions (from their image labels)."""
        return describe_flavors(self.builder.engine, self.builder.settings)

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
