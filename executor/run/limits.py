"""Per-plugin sandbox limits: overrides that can only tighten the operator's profile.

The operator's ``SandboxProfile`` (settings ``EXECUTOR_SANDBOX_*``) holds both the defaults
and the maxima. A plugin may ask for less of any resource, never more: an override above
the operator's value is refused with ``LimitExceeded`` naming the field and the maximum.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from executor.errors import LimitExceeded
from executor.settings import SandboxProfile

__all__ = [
    "LIMIT_FIELDS",
    "LimitsPublic",
    "PluginLimits",
    "check_limits",
    "effective_profile",
    "limits_public",
]

# The profile fields a plugin may override (the hardening flags are not negotiable).
LIMIT_FIELDS = (
    "memory_mib",
    "cpus",
    "pids",
    "timeout_s",
    "tmpfs_mib",
    "nofile",
    "log_cap_bytes",
    "envelope_cap_bytes",
)


class PluginLimits(BaseModel):
    """A plugin's overrides; a field left unset (null) means the operator's value."""

    model_config = ConfigDict(extra="forbid")

    memory_mib: int | None = Field(None, ge=16, description="Memory limit (no swap), MiB.")
    cpus: float | None = Field(None, gt=0, description="CPU quota in cores.")
    pids: int | None = Field(None, ge=8, description="Processes and threads at most.")
    timeout_s: float | None = Field(None, gt=0, description="Wall time before SIGKILL.")
    tmpfs_mib: int | None = Field(None, ge=1, description="Size of the /tmp tmpfs, MiB.")
    nofile: int | None = Field(None, ge=64, description="Open file descriptors at most.")
    log_cap_bytes: int | None = Field(None, ge=1024, description="Log bytes kept per run.")
    envelope_cap_bytes: int | None = Field(None, ge=1024, description="Largest envelope.")


class LimitsPublic(BaseModel):
    """A plugin's overrides, the limits its runs get, and the operator's maxima."""

    plugin: str
    overrides: PluginLimits
    effective: dict[str, float]
    maxima: dict[str, float]


def check_limits(limits: PluginLimits, profile: SandboxProfile) -> PluginLimits:
    """``limits`` if every override is within the operator's maxima, else ``LimitExceeded``."""
    for name, value in limits.model_dump(exclude_none=True).items():
        maximum = getattr(profile, name)
        if value > maximum:
            raise LimitExceeded(
                f"{name}={_number(value)} is above the operator's maximum of "
                f"{_number(maximum)}: ask for at most {_number(maximum)}, or leave {name} "
                "unset to get the maximum",
                field=name,
                maximum=maximum,
            )
    return limits


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def effective_profile(profile: SandboxProfile, overrides: dict[str, Any] | None) -> SandboxProfile:
    """The profile one run of a plugin gets: the operator's, tightened by its overrides.

    Overrides stored before the operator lowered a maximum are clamped to the new maximum.
    """
    update = {
        name: min(value, getattr(profile, name))
        for name, value in (overrides or {}).items()
        if name in LIMIT_FIELDS and value is not None
    }
    return profile.model_copy(update=update) if update else profile


def limits_public(
    name: str, overrides: dict[str, Any] | None, profile: SandboxProfile
) -> LimitsPublic:
    """The wire view of a plugin's limits."""
    effective = effective_profile(profile, overrides)
    return LimitsPublic(
        plugin=name,
        overrides=PluginLimits.model_validate(overrides or {}),
        effective={f: getattr(effective, f) for f in LIMIT_FIELDS},
        maxima={f: getattr(profile, f) for f in LIMIT_FIELDS},
    )
