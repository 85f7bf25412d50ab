"""Webhooks: create and update (a webhook is a plugin that is a URL: it is listed, activated,
deactivated and deleted with the plugin routes)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from executor.api.deps import PluginsWrite, ServiceDep
from executor.identifiers import WebhookName
from executor.service.webhooks import WebhookSaved

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    """Body of POST /v1/webhooks: Kili's ``create_webhook`` arguments."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(description="http(s) URL each matching event is POSTed to.")
    plugin_name: WebhookName = Field(description="The webhook's name (a plugin name).")
    header: str | None = Field(None, description="Sent as the Authorization header.")
    handler_types: list[str] | None = Field(
        None, description="Handler types it is called for; default onSubmit and onReview."
    )
    event_matcher: list[str] | None = Field(
        None, description="Other event types or globs it is called for, e.g. 'asset.*'."
    )


class WebhookUpdate(BaseModel):
    """Body of PATCH /v1/webhooks/{webhook}: each field left out keeps its value; ``header``
    "" removes the header."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = None
    header: str | None = None
    handler_types: list[str] | None = None
    event_matcher: list[str] | None = None


class WebhookPublic(BaseModel):
    name: str
    kind: str = "webhook"
    version: int
    url: str
    header: str | None = Field(description="Masked: never returned in full.")
    handler_types: list[str]
    event_matcher: list[str] | None
    signing_secret: str | None = Field(
        description="Only in the answer to the create: keep it, it is not shown again."
    )


def _public(saved: WebhookSaved) -> WebhookPublic:
    return WebhookPublic.model_validate(saved, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookPublic)
def create_webhook(body: WebhookIn, caller: PluginsWrite, service: ServiceDep) -> WebhookPublic:
    """Create a webhook (ACTIVE at once); 422 ``address_refused`` when its URL resolves to a
    loopback, link-local, private, unspecified or multicast address the operator did not list."""
    saved = service.webhooks.create_webhook(
        caller,
        webhook_url=body.webhook_url,
        plugin_name=body.plugin_name,
        header=body.header,
        handler_types=body.handler_types,
        event_matcher=body.event_matcher,
    )
    return _public(saved)


@router.patch("/{webhook}", response_model=WebhookPublic)
def update_webhook(
    webhook: WebhookName, body: WebhookUpdate, caller: PluginsWrite, service: ServiceDep
) -> WebhookPublic:
    """A new version of the webhook with the fields given changed (the signing secret stays)."""
    saved = service.webhooks.update_webhook(
        caller,
        new_webhook_url=body.webhook_url,
        plugin_name=webhook,
        new_header=body.header,
        handler_types=body.handler_types,
        event_matcher=body.event_matcher,
    )
    return _public(saved)
