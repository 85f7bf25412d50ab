"""What every CLI command shares: the API client from settings, and API errors for people."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from executor.cli.client import ApiClient, ApiError
from executor.cli.config import ClientSettings
from executor.cli.render import err_console, terminal_text
from executor.identifiers import IdentifierError, IdKind, check_identifier

__all__ = [
    "ActAsOpt",
    "JsonOpt",
    "KeyArg",
    "NodeArg",
    "PluginArg",
    "ProjectArg",
    "ProjectOpt",
    "TenantArg",
    "TenantOpt",
    "WideOpt",
    "call",
    "checks",
    "client",
]


def checks(kind: IdKind) -> Callable[[str | None], str | None]:
    """A typer callback: the value if it is a whole ``kind``, else a usage error (exit 2)
    naming the parameter, before any request is made (a '..' in a path would move it)."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_identifier(kind, value)  # plugin names: in NFC, as stored
        except IdentifierError as error:
            raise typer.BadParameter(terminal_text(error.message)) from None

    return check


PluginArg = Annotated[str, typer.Argument(help="Plugin name.", callback=checks(IdKind.PLUGIN))]
ProjectArg = Annotated[str, typer.Argument(help="Project id.", callback=checks(IdKind.PROJECT))]
TenantArg = Annotated[str, typer.Argument(help="Tenant name.", callback=checks(IdKind.TENANT))]
KeyArg = Annotated[str, typer.Argument(help="Key id.", callback=checks(IdKind.KEY))]
NodeArg = Annotated[str, typer.Argument(help="Node id.", callback=checks(IdKind.NODE))]
ProjectOpt = Annotated[
    str, typer.Option("--project", "-p", help="Project id.", callback=checks(IdKind.PROJECT))
]
TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", help="Tenant name.", callback=checks(IdKind.TENANT))
]
WideOpt = Annotated[
    bool,
    typer.Option("--wide", help="Every column whole (else columns that do not fit are hidden)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ActAsOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        help="Operator key only: the tenant to act on (default: 'default').",
        callback=checks(IdKind.TENANT),
    ),
]


# The clients the running command opened; the app closes them when the command ends.
_opened: list[ApiClient] = []


def close_clients() -> None:
    """Close every client the command opened (its kept-alive connections)."""
    while _opened:
        _opened.pop().close()


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
    opened = ApiClient(settings.url, key, tenant)
    _opened.append(opened)
    return opened


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one API call; an API error is printed for people and exits 1."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        err_console.print(f"[red]error:[/] {escape(terminal_text(str(exc)))}")
        raise typer.Exit(1) from exc
