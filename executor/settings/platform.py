"""The settings of the platform API gateway: where plugins' calls go, and its limits
(docs/gateway.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from executor.settings.base import MIB, Group, group_config
from executor.settings.checks import check_platform_url

__all__ = ["GatewaySettings", "PlatformSettings", "PlatformTarget"]


class PlatformTarget(BaseModel):
    """The platform API one project's plugins reach through the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL; only paths under it are forwarded.")
    credential: SecretStr | None = Field(
        None, description="Operator credential for this project; default: the global one."
    )

    _check_url = field_validator("url")(check_platform_url)


class PlatformSettings(Group):
    """The platform API plugins reach, and the operator credential the gateway sends."""

    model_config = group_config("EXECUTOR_PLATFORM_")
    name: ClassVar[str] = "platform"

    api_url: str = Field(
        "http://127.0.0.1:9000",
        description="Platform API base URL plugins reach through the gateway; "
        "'{project_id}' in it is replaced by the invocation's project.",
    )
    credential: SecretStr | None = Field(
        None, description="Operator credential the gateway sends instead of the run token."
    )
    projects: dict[str, PlatformTarget] = Field(
        default_factory=dict,
        description='Per-project overrides, JSON: {"<project>": {"url": ..., "credential": ...}}.',
    )
    credential_header: str = Field(
        "Authorization", description="Header that carries the operator credential upstream."
    )
    credential_prefix: str = Field(
        "X-API-Key: ", description="Text put before the credential in that header (Kili's)."
    )

    _check_url = field_validator("api_url")(check_platform_url)


class GatewaySettings(Group):
    """The gateway's socket and the limits of the calls a plugin makes through it."""

    model_config = group_config("EXECUTOR_GATEWAY_")
    name: ClassVar[str] = "gateway"

    socket_dir: Path | None = Field(
        None, description="Folder of the gateway Unix socket; default: data_dir/run."
    )
    port: int = Field(
        8765, ge=1, le=65535, description="Port of the forwarder inside each plugin container."
    )
    max_calls: int = Field(1000, ge=1, description="Platform calls per invocation.")
    max_request_bytes: int = Field(
        1 * MIB, ge=1024, description="Largest request body a plugin may send."
    )
    max_response_bytes: int = Field(
        10 * MIB, ge=1024, description="Largest platform response body handed back."
    )
    upstream_timeout_s: float = Field(30.0, gt=0, description="Time limit of one forwarded call.")
