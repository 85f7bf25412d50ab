"""All tunables of the executor, read from ``EXECUTOR_*`` environment variables.

Nothing else in the package reads ``os.environ``: components receive a ``Settings``.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SandboxProfile", "Settings"]

MIB = 1024 * 1024


class SandboxProfile(BaseSettings):
    """Resource limits and hardening of one plugin container (DESIGN: sandbox profile)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_SANDBOX_", frozen=True)

    memory_mib: int = Field(512, ge=16, description="Memory limit, no swap on top of it.")
    cpus: float = Field(1.0, gt=0, description="CPU quota in cores.")
    pids: int = Field(128, ge=8, description="Maximum number of processes and threads.")
    timeout_s: float = Field(60.0, gt=0, description="Wall time before SIGKILL.")
    tmpfs_mib: int = Field(64, ge=1, description="Size of the /tmp tmpfs.")
    nofile: int = Field(1024, ge=64, description="Open file descriptor limit.")
    log_cap_bytes: int = Field(1 * MIB, ge=1024, description="Log bytes kept per invocation.")
    envelope_cap_bytes: int = Field(5 * MIB, ge=1024, description="Largest envelope on stdin.")
    user: str = Field("10000:10000", description="uid:gid the plugin runs as (never root).")
    oci_runtime: str = Field("runc", description="OCI runtime: runc, or runsc (gVisor).")


class Settings(BaseSettings):
    """Executor settings; each field is the env var ``EXECUTOR_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTOR_", frozen=True)

    # --- server
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8700, description="Port the API listens on.")
    data_dir: Path = Field(Path("var"), description="Database, operator key and build work.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in data_dir."
    )
    operator_key: SecretStr | None = Field(
        None, description="Operator API key; generated at first start when unset."
    )

    # --- images and builds
    runtime_image: str = Field(
        "plugin-executor-runtime:latest", description="Base image every plugin image builds FROM."
    )
    build_index_url: str = Field(
        "https://pypi.org/simple", description="Package index pip installs requirements from."
    )
    build_ca_bundle: Path | None = Field(
        None, description="CA bundle (PEM) pip trusts for the index, e.g. the system bundle."
    )
    build_timeout_s: float = Field(600.0, gt=0, description="Silence limit of one build.")
    max_concurrent_builds: int = Field(2, ge=1, description="Builds running at once.")

    # --- runs
    max_concurrent_runs: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Plugin containers running at once.",
    )
    platform_api_url: str = Field(
        "http://127.0.0.1:9000", description="Platform API base URL handed to plugins."
    )
    max_runs_per_plugin: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Containers of one plugin running at once.",
    )
    max_runs_per_project: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        ge=1,
        description="Containers for one project running at once.",
    )
    dispatch_poll_s: float = Field(1.0, gt=0, description="Queue poll interval (fallback).")
    lease_s: float = Field(30.0, gt=0, description="Lease on a running invocation; renewed.")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, wait this long for runs before handing them back."
    )
    retry_max_attempts: int = Field(
        5, ge=1, description="Attempts for infrastructure failures before 'dead'."
    )
    retry_base_s: float = Field(1.0, gt=0, description="First retry delay; doubles each time.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest retry delay.")
    max_event_bytes: int = Field(1024 * 1024, ge=1024, description="Largest event body.")
    sandbox: SandboxProfile = Field(default_factory=SandboxProfile)

    # --- CLI client
    url: str = Field("http://127.0.0.1:8700", description="Server URL the CLI talks to.")
    api_key: SecretStr | None = Field(None, description="API key the CLI sends.")

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``data_dir/executor.db`` (SQLite)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'executor.db').resolve()}"

    @property
    def operator_key_file(self) -> Path:
        """Where a generated operator key is kept (mode 0600)."""
        return self.data_dir / "operator_key"
