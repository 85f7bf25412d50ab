"""Invocations (runs): their attempts, platform API calls and log records."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from executor.statuses import AttemptKind, InvocationStatus

__all__ = [
    "AttemptPublic",
    "GatewayCallPublic",
    "InvocationPublic",
    "LogMetadata",
    "LogPage",
    "LogRecordPublic",
    "LogType",
]

LogType = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "SYSTEM"]


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
