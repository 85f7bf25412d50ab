"""Webhooks: plugins that are a URL instead of code (Kili's ``create_webhook`` and
``update_webhook``). Each create or update is a new version, ACTIVE at once; its
settings are checked (the receiver's address included) before anything is stored."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from executor.errors import WebhookRejected, checked_identifier
from executor.identifiers import IdKind
from executor.intake.pysource import HANDLER_WIRE_NAMES
from executor.run.outbound import AllowList, pin
from executor.service.audit import record
from executor.settings import Settings
from executor.store import tenants as tenant_store
from executor.store import webhooks as webhook_store
from executor.store.db import Database
from executor.store.tables import Webhook
from executor.tenancy.access import Caller
from executor.tenancy.quotas import quotas_for

__all__ = ["DEFAULT_HANDLER_TYPES", "WebhookSaved", "Webhooks", "masked"]

# Kili's default when create_webhook gets no handler types.
DEFAULT_HANDLER_TYPES = ("onSubmit", "onReview")
# on_event is for plugins; a webhook names other events in its event matcher.
HANDLER_TYPES = frozenset(HANDLER_WIRE_NAMES.values()) - {"onEvent"}
MAX_HEADER_CHARS = 4096
MAX_MATCHERS = 50
MAX_MATCHER_CHARS = 200
SIGNING_SECRET_BYTES = 32
SHOWN_SECRET_CHARS = 4  # the end of a header shown back, so its owner can tell which it is


def masked(header: str | None) -> str | None:
    """A header as shown back: never in full (its last characters when it is long)."""
    if not header:
        return None
    if len(header) < 4 * SHOWN_SECRET_CHARS:
        return "****"
    return "****" + header[-SHOWN_SECRET_CHARS:]


@dataclass(frozen=True)
class WebhookSaved:
    """A webhook version just stored. ``signing_secret`` is set only when it was created:
    it is shown once (the receiver verifies signatures with it)."""

    name: str
    version: int
    url: str
    header: str | None  # masked
    handler_types: list[str]
    event_matcher: list[str] | None
    signing_secret: str | None


def _printable(text: str, field: str, limit: int) -> str:
    if len(text) > limit:
        raise WebhookRejected(f"{field} is longer than {limit} characters", field=field)
    for position, char in enumerate(text):
        if not (" " <= char <= "~"):
            raise WebhookRejected(
                f"{field} has {char!r} at position {position}: send one line of printable "
                "ASCII text",
                field=field,
            )
    return text


def check_handler_types(handler_types: Sequence[str]) -> list[str]:
    for index, handler in enumerate(handler_types):
        if handler not in HANDLER_TYPES:
            raise WebhookRejected(
                f"handler_types[{index}] {handler[:100]!r} is not a handler type: use "
                f"{', '.join(sorted(HANDLER_TYPES))}",
                field=f"handler_types[{index}]",
            )
    return list(dict.fromkeys(handler_types))


def check_event_matcher(event_matcher: Sequence[str]) -> list[str]:
    if len(event_matcher) > MAX_MATCHERS:
        raise WebhookRejected(
            f"event_matcher has {len(event_matcher)} entries: at most {MAX_MATCHERS}",
            field="event_matcher",
        )
    for index, pattern in enumerate(event_matcher):
        field = f"event_matcher[{index}]"
        if not pattern:
            raise WebhookRejected(f"{field} is empty: name an event type or glob", field=field)
        _printable(pattern, field, MAX_MATCHER_CHARS)
    return list(dict.fromkeys(event_matcher))


class Webhooks:
    """Creates and updates a caller's webhooks, each recorded in the audit trail in the same
    transaction."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.allowed = AllowList.parse(settings.webhooks.allowed_hosts)

    def create_webhook(
        self,
        caller: Caller,
        webhook_url: str,
        plugin_name: str,
        header: str | None = None,
        handler_types: Sequence[str] | None = None,
        event_matcher: Sequence[str] | None = None,
    ) -> WebhookSaved:
        """A new webhook ``plugin_name`` POSTing matching events to ``webhook_url`` with
        ``Authorization: <header>``; ``handler_types`` default to onSubmit and onReview.
        Conflict if the name is taken; the signing secret is made here and returned once."""
        receiver = Webhook(
            url=webhook_url,
            header=header or None,
            signing_secret="whsec_" + secrets.token_urlsafe(SIGNING_SECRET_BYTES),
            handler_types=list(DEFAULT_HANDLER_TYPES if handler_types is None else handler_types),
            event_matcher=None if event_matcher is None else list(event_matcher),
        )
        return self._save(caller, plugin_name, receiver, created=True)

    def update_webhook(
        self,
        caller: Caller,
        new_webhook_url: str | None,
        plugin_name: str,
        new_header: str | None = None,
        handler_types: Sequence[str] | None = None,
        event_matcher: Sequence[str] | None = None,
    ) -> WebhookSaved:
        """A new version of webhook ``plugin_name``; each argument left None keeps the
        current value (``new_header=""`` removes the header). The signing secret stays."""
        with self.db.session() as session:
            plugin = webhook_store.get_webhook(session, caller.tenant_id, plugin_name)
            current = webhook_store.latest_settings(session, plugin)
        receiver = Webhook(
            url=current.url if new_webhook_url is None else new_webhook_url,
            header=current.header if new_header is None else (new_header or None),
            signing_secret=current.signing_secret,
            handler_types=current.handler_types if handler_types is None else list(handler_types),
            event_matcher=current.event_matcher if event_matcher is None else list(event_matcher),
        )
        return self._save(caller, plugin_name, receiver, created=False)

    def _save(self, caller: Caller, name: str, receiver: Webhook, *, created: bool) -> WebhookSaved:
        name = checked_identifier(IdKind.WEBHOOK, name, "plugin_name")
        if receiver.header is not None:
            _printable(receiver.header, "header", MAX_HEADER_CHARS)
        receiver.handler_types = check_handler_types(receiver.handler_types)
        matcher = receiver.event_matcher
        receiver.event_matcher = None if matcher is None else check_event_matcher(matcher)
        # Last: the only check that asks the resolver. Checked again at each delivery.
        pin(receiver.url, self.allowed)
        events = list(dict.fromkeys([*receiver.handler_types, *(receiver.event_matcher or [])]))
        with self.db.session() as session:
            quotas = quotas_for(
                tenant_store.get_tenant(session, caller.tenant_id), self.settings.tenancy
            )
            version = webhook_store.add_webhook_version(
                session,
                caller.tenant_id,
                name,
                quotas=(quotas.max_plugins, quotas.max_versions),
                handlers=events,
                webhook=receiver,
                new=created,
            )
            action = "webhook.create" if created else "webhook.update"
            record(
                session, caller, action, name, detail={"version": version.number, "events": events}
            )
        return WebhookSaved(
            name=name,
            version=version.number,
            url=receiver.url,
            header=masked(receiver.header),
            handler_types=receiver.handler_types,
            event_matcher=receiver.event_matcher,
            signing_secret=receiver.signing_secret if created else None,
        )
