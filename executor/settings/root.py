"""All tunables of the executor, read from ``EXECUTOR_*`` environment variables.

Nothing else in the package reads ``os.environ``: components receive a ``Settings``, or the
one group of it they need (``settings.build``, ``settings.gateway``, ...). Each group reads
its own variables (executor.settings.base); ``Settings`` reads the server's own and builds
every group, so one wrong value anywhere is one error naming its variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from executor.settings.base import Group, variable
from executor.settings.checks import WILDCARD_HOSTS, check_public_url
from executor.settings.images import BuildSettings, ImageSettings, UploadSettings
from executor.settings.platform import GatewaySettings, PlatformSettings
from executor.settings.runs import NodeSettings, RunSettings, WarmPoolSettings, WebhookSettings
from executor.settings.sandbox import SandboxProfile
from executor.settings.service import ApiSettings, RetentionSettings, TenancySettings

__all__ = ["GROUPS", "Settings", "variable_at", "variables"]

GROUPS: tuple[type[Group], ...] = (
    ApiSettings,
    BuildSettings,
    ImageSettings,
    UploadSettings,
    SandboxProfile,
    RunSettings,
    WarmPoolSettings,
    NodeSettings,
    GatewaySettings,
    PlatformSettings,
    WebhookSettings,
    RetentionSettings,
    TenancySettings,
)
_BY_NAME = {group.name: group for group in GROUPS}
# A variable's name without EXECUTOR_, lower case (the keyword Settings takes for it) ->
# its group and field: build_timeout_s -> ("build", "timeout_s").
KEYWORDS = {
    variable(group, field).removeprefix("EXECUTOR_").lower(): (group.name, field)
    for group in GROUPS
    for field in group.model_fields
}


class _OwnVariables(EnvSettingsSource):
    """The environment, for the server's own fields: a group reads its own variables, and an
    EXECUTOR_RUNS (no variable) set by mistake is not parsed as a group's JSON."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in _BY_NAME:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    """Executor settings: the server's own (``EXECUTOR_<FIELD>``) and one attribute per group.

    ``Settings(**values)`` takes each variable's name without ``EXECUTOR_`` as a keyword
    (``build_timeout_s=5``), or a whole group (``sandbox=SandboxProfile(...)``).
    """

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", frozen=True)

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8700, description="Port the API listens on.")
    public_url: str | None = Field(
        None,
        description="URL clients reach the API at, for the URLs it answers (redirects, "
        "GraphQL upload URLs), never taken from a request's Host header; default: "
        "http://HOST:PORT (127.0.0.1 for a wildcard HOST).",
    )
    data_dir: Path = Field(Path("var"), description="Database, operator key and build work.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in data_dir."
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        description="Store connections a process keeps open; under more concurrent requests "
        "it opens up to twice as many again, closed as they are returned.",
    )
    operator_key: SecretStr | None = Field(
        None, description="Operator API key; generated at first start when unset."
    )
    # The CLI client's (executor.cli.config.ClientSettings reads them alone).
    url: str = Field("http://127.0.0.1:8700", description="Server URL the CLI talks to.")
    api_key: SecretStr | None = Field(None, description="API key the CLI sends.")

    api: ApiSettings = Field(default_factory=ApiSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    sandbox: SandboxProfile = Field(default_factory=SandboxProfile)
    runs: RunSettings = Field(default_factory=RunSettings)
    warm_pool: WarmPoolSettings = Field(default_factory=WarmPoolSettings)
    nodes: NodeSettings = Field(default_factory=NodeSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)

    _check_public_url = field_validator("public_url")(check_public_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _OwnVariables(settings_cls)

    def __init__(self, **values: Any) -> None:
        values, errors = _with_groups(values)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            errors = [*_details(exc, ()), *errors]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)

    def with_values(self, **values: Any) -> Settings:
        """A validated copy with these values changed (keywords as ``Settings`` takes them)."""
        current: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        for key, value in values.items():
            if key in KEYWORDS:
                group, field = KEYWORDS[key]
                current[group] = {**dict(current[group]), field: value}
            else:
                current[key] = value
        return type(self)(**current)

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``data_dir/executor.db`` (SQLite)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'executor.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """``public_url`` without a trailing slash, or the one derived from host and port."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = WILDCARD_HOSTS.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def resolved_gateway_socket_dir(self) -> Path:
        """The folder holding the gateway socket (the only host folder plugins see)."""
        return (self.gateway.socket_dir or self.data_dir / "run").resolve()

    @property
    def operator_key_file(self) -> Path:
        """Where a generated operator key is kept (mode 0600)."""
        return self.data_dir / "operator_key"


def _with_groups(values: dict[str, Any]) -> tuple[dict[str, Any], list[InitErrorDetails]]:
    """``values`` with every group built (from its keywords and its variables), and the
    errors of the groups that could not be: all groups are read, so all errors are told."""
    given = {key: value for key, value in values.items() if key not in KEYWORDS}
    fields: dict[str, dict[str, Any]] = {group.name: {} for group in GROUPS}
    for key, value in values.items():
        if key in KEYWORDS:
            group_name, field = KEYWORDS[key]
            fields[group_name][field] = value
    errors: list[InitErrorDetails] = []
    for group in GROUPS:
        whole, own = given.get(group.name), fields[group.name]
        if whole is not None and not isinstance(whole, Mapping):
            if own:
                raise TypeError(
                    f"Settings: give {group.name}= or its variables' keywords, not both"
                )
            continue  # a group already built (or not one: validation says so)
        own = {**(whole or {}), **own}
        try:
            given[group.name] = group(**own)
        except ValidationError as exc:
            errors.extend(_details(exc, (group.name,)))
            given[group.name] = group.model_construct()
    return given, errors


def _details(exc: ValidationError, where: tuple[str, ...]) -> list[InitErrorDetails]:
    """``exc``'s errors, located under ``where`` (a group's name), to raise again."""
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        detail = InitErrorDetails(
            type=error["type"], loc=(*where, *error["loc"]), input=error["input"]
        )
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return details


def variable_at(location: tuple[int | str, ...]) -> tuple[str, FieldInfo | None]:
    """The variable an error of ``Settings`` at ``location`` is about, and its field;
    ``("settings", None)`` for an error of several variables (they name themselves)."""
    name = str(location[0]) if location else ""
    if name in _BY_NAME:
        group = _BY_NAME[name]
        key = str(location[1]) if len(location) > 1 else ""
        for field_name, info in group.model_fields.items():
            if key in (field_name, info.validation_alias):
                return variable(group, field_name, info), info
        return "settings", None
    field = Settings.model_fields.get(name)
    return (f"EXECUTOR_{name.upper()}", field) if field is not None else ("settings", None)


def variables() -> list[str]:
    """Every variable ``Settings`` reads, the server's own first, then each group's."""
    own = [f"EXECUTOR_{name.upper()}" for name in Settings.model_fields if name not in _BY_NAME]
    return own + [variable(group, field) for group in GROUPS for field in group.model_fields]
