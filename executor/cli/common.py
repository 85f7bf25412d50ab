"""What every CLI command shares: the API client from settings, and API errors for people."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli.client import ApiClient, ApiError
from executor.cli.config import ClientSettings
from executor.cli.render import err_console, terminal_text

__all__ = ["ActAsOpt", "WideOpt", "call", "client"]

WideOpt = Annotated[
    bool,
    typer.Option("--wide", help="Every column whole (else columns that do not fit are hidden)."),
]

ActAsOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Operator key only: the tenant to act on (default: 'default')."),
]


def client(tenant: str | None = None) -> ApiClient:
    """The API client; ``tenant`` (operator key only) is the tenant it acts on."""
    settings = ClientSettings()
    key = settings.key()
    if key is None:
        err_console.print(
            "[red]No API key:[/] set EXECUTOR_API_KEY (or run from the folder where the "
            "server keeps var/operator_key)."
        )
        raise typer.Exit(2)
    return ApiClient(settings.url, key, tenant)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one API call; an API error is printed for people and exits 1."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        err_console.print(f"[red]error:[/] {escape(terminal_text(str(exc)))}")
        raise typer.Exit(1) from exc
