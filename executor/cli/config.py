"""What the CLI reads from its environment.

Commands that talk to a server read only ``ClientSettings`` (the URL and a key), so a server
setting that is wrong in the same shell cannot break ``plugin-executor list``. Commands that
are a server (``serve``, ``worker``) or build locally (``run``) read the whole ``Settings``
through ``server_settings``, which says what is wrong in one line per variable instead of a
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.markup import escape

from executor.cli.render import err_console, terminal_text
from executor.settings import Settings, variable_at

__all__ = ["ClientSettings", "server_settings", "setting_errors"]


class ClientSettings(BaseSettings):
    """The server the CLI talks to and the key it sends (the same variables as the server's:
    EXECUTOR_URL, EXECUTOR_API_KEY, else the operator key, else ``data_dir/operator_key``)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", frozen=True)

    url: str = "http://127.0.0.1:8700"
    api_key: SecretStr | None = None
    operator_key: SecretStr | None = None
    data_dir: Path = Path("var")

    def key(self) -> str | None:
        """The key to send, or None when none is set anywhere."""
        for secret in (self.api_key, self.operator_key):
            if secret is not None:
                return secret.get_secret_value()
        key_file = self.data_dir / "operator_key"
        return key_file.read_text().strip() if key_file.exists() else None


def setting_errors(exc: ValidationError) -> list[str]:
    """One line per wrong variable: its name, the value given, what is wrong and what it is."""
    lines = []
    for error in exc.errors():
        location: tuple[Any, ...] = tuple(error["loc"])
        variable, field = variable_at(location)
        given = error.get("input")
        value = f"={given!r}" if location and isinstance(given, str | int | float) else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        accepts = f" ({field.description})" if field is not None and field.description else ""
        lines.append(f"{variable}{value}: {message}{accepts}")
    return lines


def server_settings() -> Settings:
    """The server's settings from the environment; a wrong one exits 2 naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in setting_errors(exc):
            err_console.print(f"[red]error:[/] {escape(terminal_text(line))}", soft_wrap=True)
        raise typer.Exit(2) from None
