"""Wire formats (docs/architecture.md, "Wire formats"): request and response bodies, and the
envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from executor.identifiers import EventId, ProjectId, RuntimeName, TenantName, VersionNumber
from executor.statuses import (
    AttemptKind,
    BuildStatus,
    InvocationStatus,
    NodeState,
    PluginKind,
    RuntimeFlavor,
    Scope,
)

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
    "PercentilesPublic",
    "PluginFailuresPublic",
    "PluginPublic",
    "PluginSummary",
    "ProjectPublic",
    "QueuePublic",
    "RolledBack",
    "RuntimePublic",
    "StatsBucket",
    "StatsBucketPublic",
    "StatsPublic",
    "TenantIn",
    "TenantPublic",
    "VersionPublic",
    "VersionStatsPublic",
]

LogType = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "SYSTEM"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Events whose handler gets ``(label, asset_id)`` as arguments: both must be in the event.
LABELED_EVENTS = frozenset({"onSubmit", "onReview"})


class EventIn(_Strict):
    """A labeling event posted by the platform."""

    id: EventId | None = Field(None, description="Optional idempotency key.")
    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z][A-Za-z0-9_.*-]*$")
    project_id: ProjectId
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


class RollbackIn(_Strict):
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
    error_type: str | None = Field(
        None,
        description="Why a run that did not succeed failed, like Lambda's errorType: the "
        "exception the handler raised (ValueError), or the executor's own classification "
        "(Sandbox.Timeout, Sandbox.OutOfMemory, Runtime.ExitError, ...). None: it succeeded.",
    )
    error_message: str | None = Field(
        None, description="The exception's message, or the executor's reason (one line)."
    )
    error_location: str | None = Field(
        None,
        description="The plugin's file:line where the exception was raised (main.py:12); "
        "None when the executor classified the failure itself.",
    )
    gateway_calls: list[GatewayCallPublic]
    attempts: list[AttemptPublic]
    replay_of: str | None
    executor: str | None = Field(description="The executor process that holds or held the run.")
    node: str | None = Field(None, description="The node that holds or held the run.")
    plugin_deleted_at: datetime | None = Field(
        description="When the plugin this run belongs to was deleted (the run is kept)."
    )
    http_status: int | None = Field(
        None, description="A webhook delivery: the receiver's HTTP status (latest attempt)."
    )


class AttemptPublic(BaseModel):
    attempt: int
    reason: str
    at: datetime
    kind: AttemptKind | None = Field(
        None,
        description="plugin (counted against max_retries), infrastructure (retried for "
        "EXECUTOR_INFRA_RETRY_BUDGET_S) or handed_back; none: the executor running it stopped.",
    )


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
    node_id: str | None = Field(None, description="The node the line was written on.")
    attempt: int | None = Field(None, description="The attempt of the run that wrote it.")
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

    name: TenantName = Field(description="Lower-case letters, digits, _ and -.")
    max_plugins: int | None = Field(None, ge=1, le=1_000_000)
    max_versions: int | None = Field(None, ge=1, le=1_000_000, description="Per plugin.")
    max_concurrent_runs: int | None = Field(None, ge=1, le=1_000_000)


class TenantUpdate(_Strict):
    """Body of PATCH /v1/tenants/{tenant}: the quotas sent replace the tenant's (null: the
    operator's default); those left out stay."""

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
    last_used_at: datetime | None = Field(
        description="When it last authenticated a request (to the minute; null: never)."
    )


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


# --- GET /v1/stats (executor.store.stats says how figures are bucketed and computed)
StatsBucket = Literal["minute", "hour", "day"]


class PercentilesPublic(BaseModel):
    """Continuous percentiles (linear interpolation); null when nothing was measured."""

    p50: float | None
    p95: float | None


class StatsBucketPublic(BaseModel):
    start: datetime
    runs: dict[InvocationStatus, int] = Field(description="Runs that ended here, by status.")
    total: int
    duration_ms: PercentilesPublic
    start_latency_ms: PercentilesPublic
    warm: int
    cold: int
    warm_share: float | None = Field(description="warm / (warm + cold); null without runs.")
    gateway_calls: int
    gateway_errors: int = Field(description="Calls answered 4xx/5xx or not answered.")
    gateway_error_share: float | None
    builds: int
    builds_failed: int
    build_ms: PercentilesPublic


class VersionStatsPublic(BaseModel):
    plugin: str
    version: int
    runs: int
    duration_ms: PercentilesPublic


class PluginFailuresPublic(BaseModel):
    plugin: str
    failures: int
    runs: int


class QueuePublic(BaseModel):
    depth: int
    oldest_queued_at: datetime | None
    oldest_queued_age_s: float | None


class StatsPublic(BaseModel):
    bucket: StatsBucket
    since: datetime
    until: datetime
    buckets: list[StatsBucketPublic]
    versions: list[VersionStatsPublic]
    top_failing: list[PluginFailuresPublic]
    queue: QueuePublic


class NodePublic(BaseModel):
    """A dispatching process on one Docker Engine (docs/scaling.md)."""

    id: str
    state: NodeState
    engine_version: str
    runtimes: list[str]
    max_concurrent_runs: int
    warm_pool_memory_mib: int
    labels: dict[str, str]
    warm: dict[str, int] = Field(description="Plugin version id -> warm containers ready.")
    running: int = Field(description="Runs it holds now.")
    started_at: datetime
    heartbeat_at: datetime = Field(
        description="Its last heartbeat (or claim, which renews it), by the database's clock."
    )
    clock_skew_s: float | None = Field(
        description="How far the node's clock was ahead of the database's at its last "
        "heartbeat (seconds; negative: behind; null: not measured yet)."
    )
