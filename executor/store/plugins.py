"""Queries on plugins, their versions and their activations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, undefer

from executor.errors import Conflict, NameTaken, NotFound, QuotaExceeded
from executor.identifiers import plugin_name_key
from executor.statuses import BuildStatus, InvocationStatus, PluginKind
from executor.store.tables import Activation, Invocation, Plugin, PluginVersion, utcnow

__all__ = [
    "BuildProgress",
    "VersionFacts",
    "activation_version",
    "active_versions",
    "add_version",
    "build_progress",
    "check_name_free",
    "current_version",
    "delete_activation",
    "delete_plugin",
    "find_plugin",
    "gc_candidates",
    "get_plugin",
    "get_version",
    "is_runnable",
    "list_activations",
    "list_plugins",
    "mark_image_removed",
    "pick_version",
    "rollback",
    "same_name",
    "same_source",
    "serve",
    "set_activation",
    "unfinished_builds",
    "update_build",
    "version_by_number",
    "version_to_build",
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
    same runtime flavor, whose image can still run; None if there is none."""
    candidates = session.scalars(
        select(PluginVersion)
        .join(Plugin, PluginVersion.plugin_id == Plugin.id)
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


def activation_version(activation: Activation) -> PluginVersion | None:
    """The version an event runs for this activation: its pin, else the plugin's current."""
    plugin = activation.plugin
    return pick_version(plugin.versions, plugin.current_version_id, activation.version_number)


def active_versions(session: Session) -> list[PluginVersion]:
    """Each version some activation's events run now (no duplicates), with its plugin."""
    versions: dict[str, PluginVersion] = {}
    for activation in list_activations(session):
        version = activation_version(activation)
        if version is not None and version.image_tag:
            versions.setdefault(version.id, version)
    return list(versions.values())


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
            version.plugin.current_version_id = None


def unfinished_builds(session: Session) -> list[str]:
    """Ids of versions still DEPLOYING (after a restart their builds must run again)."""
    return list(
        session.scalars(
            select(PluginVersion.id)
            .where(PluginVersion.status == BuildStatus.DEPLOYING)
            .order_by(PluginVersion.created_at)
        )
    )


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


def find_plugin(session: Session, plugin_id: str) -> Plugin | None:
    """The plugin by id, or None when it was deleted."""
    return session.get(Plugin, plugin_id)


def delete_plugin(session: Session, plugin: Plugin) -> None:
    """Delete the plugin with its versions and activations (its runs are not its rows)."""
    session.delete(plugin)
