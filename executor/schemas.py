"""Wire formats (DESIGN: wire formats): request and response bodies, and the envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from executor.bounds import MAX_INT64
from executor.statuses import BuildStatus, InvocationStatus, Scope

__all__ = [
    "ActivationIn",
    "ActivationPublic",
    "ApiInfo",
    "AuditEntryPublic",
    "Envelope",
    "EnvelopeEvent",
    "EventAccepted",
    "EventIn",
    "GatewayCallPublic",
    "InvocationPublic",
    "KeyCreated",
    "KeyIn",
    "KeyPublic",
    "LogPage",
    "LogRecordPublic",
    "PluginPublic",
    "PluginSummary",
    "ProjectPublic",
    "RolledBack",
    "TenantIn",
    "TenantPublic",
    "VersionPublic",
]

LogType = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "SYSTEM"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Events whose handler gets ``(label, asset_id)`` as arguments: both must be in the event.
LABELED_EVENTS = frozenset({"onSubmit", "onReview"})


class EventIn(_Strict):
    """A labeling event posted by the platform."""

    id: str | None = Field(None, pattern=ID_PATTERN, description="Optional idempotency key.")
    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z][A-Za-z0-9_.*-]*$")
    project_id: str = Field(pattern=ID_PATTERN)
    asset_id: str | None = Field(
        None, max_length=200, validate_default=True, description="Required for onSubmit, onReview."
    )
    label: dict[str, Any] | None = Field(
        None, validate_default=True, description="Required for onSubmit, onReview."
    )
    payload: dict[str, Any] | None = None

    @field_validator("asset_id", "label", mode="after")
    @classmethod
    def _given_to_the_handler(cls, value: object, info: ValidationInfo) -> object:
        event_type = info.data.get("type")
        if value is None and event_type in LABELED_EVENTS:
            raise PydanticCustomError(
                "missing",
                "Field required: {event_type} events hand it to the plugin's handler",
                {"event_type": event_type},
            )
        return value


class EventAccepted(BaseModel):
    event_id: str
    invocations: list[str]


class ActivationIn(_Strict):
    """Body of PUT /v1/projects/{project_id}/plugins/{name}; empty means the defaults."""

    events: list[str] | None = Field(
        None,
        min_length=1,
        description="Event types or globs (fnmatch) to run on; default: the handler types.",
    )
    max_retries: int = Field(
        0, ge=0, le=10, description="Retries of plugin failures (failed, timed_out, oom_killed)."
    )
    version: int | None = Field(
        None,
        ge=1,
        le=MAX_INT64,
        description="Pin this ACTIVE version; default: follow the current one.",
    )


class ActivationPublic(BaseModel):
    plugin: str
    project_id: str
    events: list[str]
    events_default: bool
    max_retries: int
    pinned_version: int | None
    runs_version: int | None
    created_at: datetime


class VersionPublic(BaseModel):
    version: int
    status: BuildStatus
    handlers: list[str]
    requirements: str
    source_sha256: str
    image_id: str | None
    image_removed: bool
    current: bool
    pip_freeze: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class PluginSummary(BaseModel):
    name: str
    created_at: datetime
    latest_version: int | None
    status: str | None
    projects: list[str]


class PluginPublic(PluginSummary):
    current_version: int | None
    versions: list[VersionPublic]


class GatewayCallPublic(BaseModel):
    """One platform API call a run made through the gateway."""

    at: datetime
    method: str
    path: str
    status: int
    request_bytes: int
    response_bytes: int
    duration_ms: int
    error: str | None


class RolledBack(BaseModel):
    plugin: str
    current_version: int
    previous_version: int


class InvocationPublic(BaseModel):
    id: str
    plugin: str
    version: int
    image_id: str | None
    project_id: str
    event_id: str
    event_type: str
    asset_id: str | None
    status: InvocationStatus
    exit_code: int | None
    attempt: int
    queued_at: datetime
    started_at: datetime | None
    handler_started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    start_latency_ms: int | None
    start: Literal["cold", "warm"]
    log_bytes: int
    truncated: bool
    error: str | None
    gateway_calls: list[GatewayCallPublic]
    attempts: list[AttemptPublic]
    replay_of: str | None
    executor: str | None = Field(description="The executor process that holds or held the run.")
    plugin_deleted_at: datetime | None = Field(
        description="When the plugin this run belongs to was deleted (the run is kept)."
    )


class AttemptPublic(BaseModel):
    attempt: int
    reason: str
    at: datetime


class LogMetadata(BaseModel):
    asset_id: str | None
    label_id: str | None
    # Kili's names for the same values (get_plugin_logs), so Kili scripts read them as is.
    assetId: str | None = None
    labelId: str | None = None


class LogRecordPublic(BaseModel):
    """One log line, a superset of Kili's ``get_plugin_logs`` entries."""

    id: int
    created_at: datetime
    plugin_name: str
    project_id: str
    run_id: str
    log_type: LogType
    content: str
    metadata: LogMetadata
    stream: str
    seq: int
    continues: int | None = Field(
        None,
        description="The seq of the record whose text this one continues: a line over 16 KiB "
        "is stored as several records, each with the line's level.",
    )
    # Kili's names (get_plugin_logs) for the fields above, so Kili scripts read them as is.
    createdAt: datetime | None = None
    logType: LogType | None = None
    pluginName: str | None = None
    projectId: str | None = None
    runId: str | None = None


class LogPage(BaseModel):
    records: list[LogRecordPublic]


class ApiInfo(BaseModel):
    """Where the plugin reaches the platform API: the forwarder URL, its token and socket."""

    url: str
    token: str
    socket: str | None = Field(None, description="Gateway socket the forwarder relays to.")


class EnvelopeEvent(BaseModel):
    type: str
    asset_id: str | None
    label: dict[str, Any] | None
    payload: dict[str, Any] | None


class Envelope(BaseModel):
    """The one JSON document written to a plugin container's stdin."""

    invocation_id: str
    plugin: str
    version: int
    project_id: str
    event: EnvelopeEvent
    api: ApiInfo
    deadline: datetime


class TenantIn(_Strict):
    """Body of POST /v1/tenants; quotas left out are the operator's defaults."""

    name: str = Field(pattern=TENANT_PATTERN, description="Lower-case letters, digits, _ and -.")
    max_plugins: int | None = Field(None, ge=1, le=1_000_000)
    max_versions: int | None = Field(None, ge=1, le=1_000_000, description="Per plugin.")
    max_concurrent_runs: int | None = Field(None, ge=1, le=1_000_000)


class TenantPublic(BaseModel):
    name: str
    created_at: datetime
    max_plugins: int
    max_versions: int
    max_concurrent_runs: int | None


class KeyIn(_Strict):
    """Body of POST /v1/tenants/{tenant}/keys."""

    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    scopes: list[Scope] = Field(min_length=1, max_length=5)
    expires_in_days: float | None = Field(
        None, gt=0, le=3650, description="Default: the key does not expire."
    )


class KeyPublic(BaseModel):
    id: str
    tenant: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, only its hash is kept.")


class ProjectPublic(BaseModel):
    id: str
    tenant: str
    created_at: datetime


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    tenant: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any] | None
