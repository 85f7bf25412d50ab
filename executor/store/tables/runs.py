"""Events, their invocations and what runs leave behind (tokens, gateway calls, logs), and
the nodes and the lock that dispatch them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from executor.statuses import InvocationStatus, NodeState
from executor.store.tables.base import DEFAULT_TENANT, Base, new_id, utcnow

__all__ = [
    "DispatchLock",
    "Event",
    "GatewayCall",
    "Invocation",
    "InvocationToken",
    "LogRecord",
    "Node",
]


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(200), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    type: Mapped[str] = mapped_column(String(200))
    project_id: Mapped[str] = mapped_column(String(200))
    asset_id: Mapped[str | None] = mapped_column(String(200), default=None)
    label: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invocation(Base):
    __tablename__ = "invocations"
    __table_args__ = (
        Index("ix_invocations_status_queued_id", "status", "queued_at", "id"),
        Index("ix_invocations_lease", "status", "lease_expires_at"),
        Index("ix_invocations_plugin_queued", "plugin_name", "queued_at"),
        Index("ix_invocations_finished", "finished_at"),
        Index("ix_invocations_tenant_queued", "tenant_id", "queued_at"),
        Index("ix_invocations_tenant_finished", "tenant_id", "finished_at"),  # stats
        Index("ix_invocations_node", "node_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    # No foreign keys: a run (its logs, its gateway calls) outlives its plugin and version,
    # readable and audited until retention purges it; plugin_deleted_at is set when the
    # plugin goes.
    plugin_id: Mapped[str] = mapped_column(String(36))
    version_id: Mapped[str] = mapped_column(String(36))
    plugin_name: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int] = mapped_column(Integer)
    project_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(200))
    asset_id: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), default=InvocationStatus.QUEUED.value)
    image_id: Mapped[str | None] = mapped_column(String(80), default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    handler_started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    cold_start: Mapped[bool] = mapped_column(Boolean, default=True)
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # A failed run's summary (executor.store.run_errors): the exception the handler raised
    # as the runtime reported it, or the executor's own classification (Sandbox.Timeout...).
    error_type: Mapped[str | None] = mapped_column(String(200), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    error_location: Mapped[str | None] = mapped_column(String(300), default=None)
    # Dispatch bookkeeping: who holds the run, until when, and when it may run again.
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    # Bumped at every change of holder (claim, adopt, expiry, release): each write of a run
    # is conditional on it, so a holder that lost the run writes nothing (fencing).
    lease_generation: Mapped[int] = mapped_column(Integer, default=0)
    node_id: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime | None] = mapped_column(default=None)
    # The first infrastructure failure of the run, by the store's clock: its retries last
    # EXECUTOR_INFRA_RETRY_BUDGET_S from then, on whichever node runs the next attempt.
    infra_failing_since: Mapped[datetime | None] = mapped_column(default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    # Bytes of the attempt's container stdout / stderr already read into log records: an
    # executor adopting the container after a restart replays the rest from the engine.
    stdout_read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    stderr_read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    replay_of: Mapped[str | None] = mapped_column(String(36), default=None)
    plugin_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # A webhook delivery's HTTP response status (None: a container run, or no response).
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)

    # Loaded by the reads that present invocations (``executor.store.queries``), not by a
    # run's: read unloaded, it raises (no SQL outside the store).
    gateway_calls: Mapped[list[GatewayCall]] = relationship(
        order_by="GatewayCall.id", lazy="raise", viewonly=True
    )


class DispatchLock(Base):
    """One row; claimers update it first so that claims (and their limit checks) are
    serialized across processes on SQLite and PostgreSQL alike."""

    __tablename__ = "dispatch_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    store_id: Mapped[str] = mapped_column(String(36), default=new_id)


class InvocationToken(Base):
    """The platform API token of one run: only its SHA-256 is stored."""

    __tablename__ = "invocation_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    invocation_id: Mapped[str] = mapped_column(
        ForeignKey("invocations.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    # The run's lease generation when minted: good only while that attempt holds the run.
    lease_generation: Mapped[int] = mapped_column(Integer, default=0)


class GatewayCall(Base):
    """One platform API call a run made through the gateway (the audit trail)."""

    __tablename__ = "gateway_calls"
    __table_args__ = (Index("ix_gateway_calls_created", "created_at"),)  # stats

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invocation_id: Mapped[str] = mapped_column(
        ForeignKey("invocations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(2000))
    status: Mapped[int] = mapped_column(Integer)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    response_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class LogRecord(Base):
    __tablename__ = "log_records"
    __table_args__ = (
        Index("ix_logs_project_plugin", "project_id", "plugin_name", "id"),
        Index("ix_logs_run", "run_id", "seq"),
        Index("ix_logs_created", "created_at"),
        # Added by 0005 for the query API: one run in id order, a plugin across projects,
        # a minimum level, a time window.
        Index("ix_logs_run_id", "run_id", "id"),
        Index("ix_logs_plugin", "plugin_name", "id"),
        Index("ix_logs_project_plugin_type", "project_id", "plugin_name", "log_type", "id"),
        Index("ix_logs_project_plugin_created", "project_id", "plugin_name", "created_at"),
        Index("ix_logs_tenant", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    plugin_name: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(36))
    log_type: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    asset_id: Mapped[str | None] = mapped_column(String(200), default=None)
    label_id: Mapped[str | None] = mapped_column(String(200), default=None)
    stream: Mapped[str] = mapped_column(String(10))
    seq: Mapped[int] = mapped_column(Integer)
    # The seq of the record this one continues: a long line is stored as several records.
    continues: Mapped[int | None] = mapped_column(Integer, default=None)
    # Where and in which attempt the line was written (None: before nodes existed).
    node_id: Mapped[str | None] = mapped_column(String(200), default=None)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)


class Node(Base):
    """A dispatching process on one Docker Engine: what it can run and whether it is alive.

    ``instance`` is the process holding the id now (a restarted node gets a new one)."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    instance: Mapped[str] = mapped_column(String(100))
    engine_version: Mapped[str] = mapped_column(String(100), default="")
    runtimes: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_concurrent_runs: Mapped[int] = mapped_column(Integer, default=0)
    warm_pool_memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Version id -> warm containers ready on this node: runs of it are placed here first.
    warm: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=NodeState.READY.value)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How far the node's clock was ahead of the database's at its last heartbeat (seconds,
    # negative: behind); None before its first. Shown only: every decision takes the
    # database's clock.
    clock_skew_s: Mapped[float | None] = mapped_column(Float, default=None)
