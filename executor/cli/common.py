"""What every CLI command shares: the API client from settings, and API errors for people."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from executor.cli.client import ApiClient, ApiError
from executor.cli.render import err_console, terminal_text
from executor.settings import Settings

__all__ = ["call", "client"]


def client() -> ApiClient:
    settings = Settings()
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value()
    elif settings.operator_key is not None:
        key = settings.operator_key.get_secret_value()
    elif settings.operator_key_file.exists():
        key = settings.operator_key_file.read_text().strip()
    else:
        err_console.print(
            "[red]No API key:[/] set EXECUTOR_API_KEY (or run from the folder where the "
            "server keeps var/operator_key)."
        )
        raise typer.Exit(2)
    return ApiClient(settings.url, key)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one API call; an API error is printed for people and exits 1."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        err_console.print(f"[red]error:[/] {escape(terminal_text(str(exc)))}")
        raise typer.Exit(1) from exc
