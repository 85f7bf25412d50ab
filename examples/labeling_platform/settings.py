"""Settings of the reference platform, read from ``PLATFORM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PlatformSettings"]


class PlatformSettings(BaseSettings):
    """Each field is the env var ``PLATFORM_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="PLATFORM_", frozen=True)

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(9000, description="Port the API listens on.")
    database_path: Path = Field(Path("var/platform.db"), description="SQLite database file.")
    admin_key: SecretStr = Field(description="Key of the admin (creates users, projects, assets).")
    service_key: SecretStr = Field(
        description="Credential handed to the executor's gateway: plugins act with it."
    )
    executor_url: str | None = Field(
        None, description="Executor base URL events are posted to; unset: no events."
    )
    executor_api_key: SecretStr | None = Field(None, description="Executor API key.")
    delivery_timeout_s: float = Field(10.0, gt=0, description="Time limit of one event post.")
    delivery_retry_max_s: float = Field(30.0, gt=0, description="Longest wait between retries.")
    idempotency_max_keys: int = Field(
        10_000, gt=0, description="Idempotency-Key answers kept (the oldest forgotten first)."
    )
    idempotency_ttl_s: float = Field(
        24 * 3600, gt=0, description="How long an Idempotency-Key answer is kept."
    )
