"""Plugins, their versions, runtimes and activations on projects."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from executor.identifiers import RuntimeName, VersionNumber
from executor.schemas.base import Strict
from executor.statuses import BuildStatus, PluginKind, RuntimeFlavor

__all__ = [
    "ActivationIn",
    "ActivationPublic",
    "PluginPublic",
    "PluginSummary",
    "RollbackIn",
    "RolledBack",
    "RuntimePublic",
    "VersionPublic",
]


class ActivationIn(Strict):
    """Body of PUT /v1/projects/{project_id}/plugins/{name}; empty means the defaults."""

    events: list[str] | None = Field(
        None,
        min_length=1,
        description="Event types or globs (fnmatch) to run on; default: the handler types.",
    )
    max_retries: int = Field(
        0, ge=0, le=10, description="Retries of plugin failures (failed, timed_out, oom_killed)."
    )
    version: VersionNumber | None = Field(
        None, description="Pin this ACTIVE version; default: follow the current one."
    )
    runtime: RuntimeName | None = Field(
        None,
        description="OCI runtime the runs need (runc, runsc): only nodes that have it claim "
        "them; default: the operator's.",
    )
    node_selector: dict[str, str] | None = Field(
        None,
        max_length=20,
        description="Labels a node must carry (EXECUTOR_NODE_LABELS) to claim the runs.",
    )


class ActivationPublic(BaseModel):
    plugin: str
    project_id: str
    events: list[str]
    events_default: bool
    max_retries: int
    pinned_version: int | None
    runs_version: int | None
    runtime: str | None = None
    node_selector: dict[str, str] | None = None
    created_at: datetime


class RuntimePublic(BaseModel):
    name: RuntimeFlavor
    image: str
    default: bool
    available: bool = Field(description="false: the image is not built on this engine.")
    packages: dict[str, str] = Field(description="Distribution name -> installed version.")


class VersionPublic(BaseModel):
    version: int
    status: BuildStatus
    runtime: RuntimeFlavor
    handlers: list[str]
    requirements: str
    source_sha256: str
    image_id: str | None
    image_digest: str | None = Field(
        description="With a registry: the pushed image (repo@sha256:...), what runs pull."
    )
    image_removed: bool
    current: bool
    pip_freeze: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class PluginSummary(BaseModel):
    name: str
    kind: PluginKind = Field(description="code (built and run in containers), or webhook.")
    created_at: datetime
    latest_version: int | None
    status: str | None = Field(description="The latest version's status.")
    current_version: int | None = Field(
        description="The version serving: what activations that follow the current one run "
        "(None: no ACTIVE version)."
    )
    projects: list[str]


class PluginPublic(PluginSummary):
    versions: list[VersionPublic]


class RollbackIn(Strict):
    """Body of POST /v1/plugins/{name}/rollback (optional): the version to serve."""

    to: VersionNumber | None = Field(
        None,
        description="An ACTIVE version, older (rollback) or newer (roll forward) than the "
        "current one; default: the ACTIVE version before the current one.",
    )


class RolledBack(BaseModel):
    plugin: str
    current_version: int
    previous_version: int
    recent_runs: int = Field(description="Latest ended runs of the new current version looked at.")
    recent_failures: int = Field(description="How many of those did not succeed.")
    warning: str | None = Field(
        description="Set when most of those runs failed: the version may not be a safe choice."
    )
