"""Why a command found nothing: an empty answer that hides a typo becomes an error.

The API answers an empty list for a plugin name it does not know (logs and runs of a
deleted plugin stay readable under its name), and accepts an event no plugin handles. A
person who mistyped a name would see nothing and exit 0; these checks say what was wrong.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from executor.cli import common
from executor.cli.client import ApiClient, ApiError
from executor.cli.render import err_console, terminal_text

__all__ = ["fail", "require_plugin", "why_no_invocations"]


def require_plugin(client: ApiClient, name: str) -> None:
    """Exit 1 with the API's not-found error unless the caller's tenant has plugin ``name``."""
    common.call(client.plugin, name)


def why_no_invocations(client: ApiClient, project: str, event_type: str) -> str:
    """Why an event on ``project`` of type ``event_type`` started no run, and what to do."""
    try:
        active = client.request("GET", f"/v1/projects/{project}/plugins")
    except ApiError:  # a key that may post events but not read activations
        return (
            f"no plugin active on project {project!r} handles {event_type!r} events: "
            f"check with 'plugin-executor activate NAME -p {project}'"
        )
    if not active:
        return (
            f"no plugin is active on project {project!r}: activate one first "
            f"(plugin-executor activate NAME -p {project})"
        )
    listed = "; ".join(_activation_line(a) for a in active)
    return (
        f"no plugin active on project {project!r} handles {event_type!r} events (active: "
        f"{listed}): post another --type, or activate with -e {event_type}"
    )


def _activation_line(activation: dict[str, Any]) -> str:
    events = ", ".join(activation["events"]) or "no events"
    return f"{activation['plugin']} for {events}"


def fail(message: str) -> None:
    """Print ``message`` as an error and exit 1."""
    err_console.print(f"[red]error:[/] {escape(terminal_text(message))}")
    raise typer.Exit(1)
