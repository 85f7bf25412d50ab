"""Queries on webhooks: plugins of kind ``webhook`` whose versions are receiver settings."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from executor.errors import Conflict, NotFound
from executor.statuses import BuildStatus, PluginKind, RuntimeFlavor
from executor.store import plugins as plugin_store
from executor.store import versions as version_store
from executor.store.tables import Invocation, Plugin, PluginVersion, Webhook

__all__ = [
    "add_webhook_version",
    "get_webhook",
    "latest_settings",
    "note_http_status",
]


def get_webhook(session: Session, tenant_id: str, name: str) -> Plugin:
    """The tenant's webhook named ``name``; NotFound if there is none (or it is code)."""
    plugin = plugin_store.get_plugin(session, tenant_id, name)
    if plugin.kind != PluginKind.WEBHOOK:
        raise NotFound(
            f"no webhook named {name!r}: {name!r} is a {plugin.kind} plugin (create a webhook "
            "with POST /v1/webhooks)"
        )
    return plugin


def latest_settings(session: Session, plugin: Plugin) -> Webhook:
    """The receiver settings of the webhook's newest version."""
    newest = max(plugin.versions, key=lambda v: v.number)
    webhook = session.get(Webhook, newest.id)
    if webhook is None:
        raise NotFound(f"webhook {plugin.name!r} v{newest.number} has no receiver settings")
    return webhook


def add_webhook_version(
    session: Session,
    tenant_id: str,
    name: str,
    *,
    quotas: tuple[int, int],
    handlers: list[str],
    webhook: Webhook,
    new: bool,
) -> PluginVersion:
    """The webhook's next version, ACTIVE at once (there is nothing to build), delivering to
    ``webhook`` (whose ``version_id`` is set here). ``quotas``: (max plugins, max versions).
    ``new``: the webhook is being created (Conflict if the name is taken)."""
    max_plugins, max_versions = quotas
    if new and session.scalar(
        select(Plugin.id).where(Plugin.tenant_id == tenant_id, Plugin.name == name)
    ):
        raise Conflict(
            f"a plugin named {name!r} exists: update the webhook (PATCH /v1/webhooks/{name}) "
            "or choose another name"
        )
    version = plugin_store.add_version(
        session,
        tenant_id,
        name,
        max_plugins=max_plugins,
        max_versions=max_versions,
        handlers=handlers,
        requirements="",
        source_sha256=hashlib.sha256(webhook.url.encode()).hexdigest(),
        source=b"",
        runtime=RuntimeFlavor.MINIMAL,  # recorded only: a webhook has no image
        kind=PluginKind.WEBHOOK,
    )
    webhook.version_id = version.id
    session.add(webhook)
    version_store.update_build(
        session, version.id, log="webhook: nothing to build\n", status=BuildStatus.ACTIVE
    )
    session.flush()
    return version


def note_http_status(session: Session, invocation_id: str, http_status: int | None) -> None:
    """Record the HTTP status the receiver answered the latest delivery with."""
    invocation = session.get(Invocation, invocation_id)
    if invocation is not None:
        invocation.http_status = http_status
