"""The sandbox profile: limits and hardening of every plugin container."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from executor.settings.base import MIB, Group, group_config

__all__ = ["ENGINE_LOG_SLACK_BYTES", "SandboxProfile"]

# Room above the log cap the engine's copy of a run's output keeps (a line past the cap).
ENGINE_LOG_SLACK_BYTES = 64 * 1024


class SandboxProfile(Group):
    """Resource limits and hardening of one plugin container (docs/architecture.md: the
    sandbox profile)."""

    model_config = group_config("EXECUTOR_SANDBOX_")
    name: ClassVar[str] = "sandbox"

    memory_mib: int = Field(512, ge=16, description="Memory limit, no swap on top of it.")
    cpus: float = Field(1.0, gt=0, description="CPU quota in cores.")
    pids: int = Field(128, ge=8, description="Maximum number of processes and threads.")
    timeout_s: float = Field(60.0, gt=0, description="Wall time before SIGKILL.")
    tmpfs_mib: int = Field(64, ge=1, description="Size of the /tmp tmpfs.")
    shm_mib: int = Field(
        64, ge=1, description="Size of the /dev/shm tmpfs; what it holds counts as memory."
    )
    nofile: int = Field(1024, ge=64, description="Open file descriptor limit.")
    log_cap_bytes: int = Field(1 * MIB, ge=1024, description="Log bytes kept per invocation.")
    envelope_cap_bytes: int = Field(5 * MIB, ge=1024, description="Largest envelope on stdin.")
    engine_log_max_bytes: int = Field(
        4 * MIB,
        description="Disk the engine's copy of one container's output may take (local log "
        "driver, two files of half this), read back after an executor restart; at least "
        "2 x (log_cap_bytes + 64 KiB).",
    )
    user: str = Field("10000:10000", description="uid:gid the plugin runs as (never root).")
    oci_runtime: str = Field(
        "runc",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="OCI runtime registered with dockerd: runc, or runsc (gVisor).",
    )

    @model_validator(mode="after")
    def _engine_log_holds_the_log_cap(self) -> SandboxProfile:
        # Then a rotated engine copy means the run wrote past its log cap (see Sandbox.watch).
        needed = 2 * (self.log_cap_bytes + ENGINE_LOG_SLACK_BYTES)
        if self.engine_log_max_bytes < needed:
            raise ValueError(
                f"engine_log_max_bytes={self.engine_log_max_bytes} is below 2 x (log_cap_bytes "
                f"+ {ENGINE_LOG_SLACK_BYTES}) = {needed}: the engine's copy of a run's output "
                "must hold what the log cap keeps; set EXECUTOR_SANDBOX_ENGINE_LOG_MAX_BYTES to "
                f"at least {needed}"
            )
        return self

    @field_validator("user")
    @classmethod
    def _not_root(cls, value: str) -> str:
        uid, _, gid = value.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ValueError(f"user {value!r} must be numeric uid[:gid], e.g. 10000:10000")
        if int(uid) == 0 or (gid and int(gid) == 0):
            raise ValueError(f"user {value!r} is root: plugins never run as uid or gid 0")
        return value
