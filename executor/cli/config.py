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
from executor.settings import SandboxProfile, Settings

__all__ = ["ClientSettings", "server_settings", "setting_errors"]

# The settings models and the prefix of their variables, by model name (a ValidationError's
# title): the sandbox profile is a model of its own, read from EXECUTOR_SANDBOX_*.
_MODELS: dict[str, type[BaseSettings]] = {m.__name__: m for m in (Settings, SandboxProfile)}


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


def _variable(title: str, location: tuple[int | str, ...]) -> str:
    model = _MODELS.get(title, Settings)
    prefix = str(model.model_config.get("env_prefix", "EXECUTOR_"))
    name = str(location[0]) if location else ""
    if name == "sandbox" and len(location) > 1:
        prefix, name = str(SandboxProfile.model_config["env_prefix"]), str(location[1])
    return f"{prefix}{name.upper()}" if name else "settings"


def _accepts(title: str, location: tuple[int | str, ...]) -> str:
    """The field's description (what the variable is for and takes), if it has one."""
    model = _MODELS.get(title, Settings)
    field = model.model_fields.get(str(location[0])) if location else None
    return f" ({field.description})" if field is not None and field.description else ""


def setting_errors(exc: ValidationError) -> list[str]:
    """One line per wrong variable: its name, the value given, what is wrong and what it is."""
    lines = []
    for error in exc.errors():
        location: tuple[Any, ...] = tuple(error["loc"])
        variable = _variable(exc.title, location)
        given = error.get("input")
        value = f"={given!r}" if location and isinstance(given, str | int | float) else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{variable}{value}: {message}{_accepts(exc.title, location)}")
    return lines


def server_settings() -> Settings:
    """The server's settings from the environment; a wrong one exits 2 naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in setting_errors(exc):
            err_console.print(f"[red]error:[/] {escape(terminal_text(line))}", soft_wrap=True)
        raise typer.Exit(2) from None
