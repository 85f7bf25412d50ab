"""Webhook commands: ``webhook create|update`` (docs/webhooks.md). A webhook is a plugin:
``activate``, ``deactivate``, ``list``, ``runs``, ``logs`` and ``delete`` work on it too."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli.client import segment
from executor.cli.common import PluginArg, call, client
from executor.cli.render import console, print_json, terminal_text

__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
HeaderOpt = Annotated[
    str | None,
    typer.Option(
        help="Sent as the Authorization header of each delivery; '-' reads it from stdin "
        "(keeps it out of the shell history)."
    ),
]
HandlerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--handler-type", help="onSubmit, onReview, ... (repeat); default onSubmit, onReview."
    ),
]
MatcherOpt = Annotated[
    list[str] | None,
    typer.Option("--event-matcher", help="Another event type or glob, e.g. 'asset.*' (repeat)."),
]

webhook_app = typer.Typer(no_args_is_help=True, help="Webhooks: plugins that are a URL.")


def _header(value: str | None) -> str | None:
    return sys.stdin.readline().rstrip("\r\n") if value == "-" else value


def _show(saved: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        print_json(saved)
        return
    name = escape(terminal_text(saved["name"]))
    console.print(f"Webhook {escape(name)} v{saved['version']} {verb}: {escape(saved['url'])}")
    events = [*saved["handler_types"], *(saved["event_matcher"] or [])]
    console.print(f"  called for: {escape(', '.join(events))}")
    if saved["signing_secret"]:
        console.print(
            "  signing secret (shown once; verify X-Executor-Signature with it):\n"
            f"  {saved['signing_secret']}"
        )


@webhook_app.command("create")
def create(
    name: PluginArg,
    url: Annotated[str, typer.Argument(help="http(s) URL each matching event is POSTed to.")],
    header: HeaderOpt = None,
    handler_type: HandlerOpt = None,
    event_matcher: MatcherOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a webhook (ACTIVE at once); activate it on projects like a plugin."""
    body = {
        "webhook_url": url,
        "plugin_name": name,
        "header": _header(header),
        "handler_types": handler_type or None,
        "event_matcher": event_matcher or None,
    }
    _show(call(client().request, "POST", "/v1/webhooks", json=body), "created", as_json)


@webhook_app.command("update")
def update(
    name: PluginArg,
    url: Annotated[str | None, typer.Option(help="A new URL.")] = None,
    header: HeaderOpt = None,
    handler_type: HandlerOpt = None,
    event_matcher: MatcherOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new version of the webhook; what is not given keeps its value (--header '' removes it)."""
    body = {
        "webhook_url": url,
        "header": _header(header),
        "handler_types": handler_type or None,
        "event_matcher": event_matcher or None,
    }
    saved = call(client().request, "PATCH", f"/v1/webhooks/{segment(name)}", json=body)
    _show(saved, "updated", as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")
