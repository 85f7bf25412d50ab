"""Table models. Wire schemas live in ``executor.schemas``; these are rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from executor.identifiers import plugin_name_key
from executor.statuses import BuildStatus, InvocationStatus, NodeState, PluginKind

__all__ = [
    "DEFAULT_TENANT",
    "Activation",
    "ApiKey",
    "AuditEntry",
    "Base",
    "DispatchLock",
    "Event",
    "GatewayCall",
    "Invocation",
    "InvocationToken",
    "KeyBucket",
    "LogRecord",
    "Node",
    "Plugin",
    "PluginVersion",
    "Project",
    "Tenant",
    "UploadTicket",
    "Webhook",
    "new_id",
    "utcnow",
]


# Rows made before tenants existed belong to this one; the operator key acts on it by default.
DEFAULT_TENANT = "default"


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random row id (UUID4 as text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and gives them back aware (SQLite drops the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
    }


def _tenant_column() -> Mapped[str]:
    return mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), default=DEFAULT_TENANT, index=True
    )


class Tenant(Base):
    """A user (or team) of the executor: owns plugins, projects, runs, logs and keys.

    Quotas left None are the operator's defaults (Settings ``tenant_max_*``)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # its name
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    max_plugins: Mapped[int | None] = mapped_column(Integer, default=None)
    max_versions: Mapped[int | None] = mapped_column(Integer, default=None)
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer, default=None)


class ApiKey(Base):
    """A tenant's API key: only its SHA-256 is stored; ``scopes`` say what it may do."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_column()
    name: Mapped[str] = mapped_column(String(100))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # When it last authenticated a request, to the minute (executor.tenancy.usage).
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class KeyBucket(Base):
    """One tenant key's token bucket of one ``kind`` (requests, upload bytes), kept in the
    store so that every API process takes from the same one (``executor.store.buckets``)."""

    __tablename__ = "key_buckets"

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    # The database's clock at the last take, in seconds since the epoch.
    updated_s: Mapped[float] = mapped_column(Float)
    # Whether the last take was granted: what the take's RETURNING reads back.
    granted: Mapped[bool] = mapped_column(Boolean)


class UploadTicket(Base):
    """A GraphQL upload URL's one-time ticket (only its SHA-256 is stored) and the archive
    PUT to it, until a runner call takes it: any API process accepts either step."""

    __tablename__ = "upload_tickets"

    ticket_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = _tenant_column()
    plugin_name: Mapped[str] = mapped_column(String(200))
    is_update: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    archive: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class Project(Base):
    """A platform project and the tenant whose plugins its events run."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = _tenant_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One management action: who (``actor``), on which tenant, what, on what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # No foreign key: the trail outlives what it names.
    tenant_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


def _name_key(context: Any) -> str:
    """The new plugin row's ``plugin_name_key``: set by every insert, so none can miss it."""
    return plugin_name_key(context.get_current_parameters()["name"])


class Plugin(Base):
    __tablename__ = "plugins"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_plugins_tenant_name"),
        # One plugin per name up to case and Unicode form (executor.identifiers).
        Index("uq_plugins_tenant_name_key", "tenant_id", "name_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = _tenant_column()
    name: Mapped[str] = mapped_column(String(64))  # Unicode NFC
    name_key: Mapped[str] = mapped_column(String(64), default=_name_key)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by rollback: the version events run. None: the newest ACTIVE version.
    current_version_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # Per-plugin sandbox overrides (executor.run.limits.PluginLimits); None: the operator's.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    kind: Mapped[str] = mapped_column(String(16), default=PluginKind.CODE.value)

    versions: Mapped[list[PluginVersion]] = relationship(
        back_populates="plugin", order_by="PluginVersion.number", cascade="all, delete-orphan"
    )


class PluginVersion(Base):
    __tablename__ = "plugin_versions"
    __table_args__ = (UniqueConstraint("plugin_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    plugin_id: Mapped[str] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=BuildStatus.DEPLOYING.value)
    handlers: Mapped[list[str]] = mapped_column(default=list)
    requirements: Mapped[str] = mapped_column(Text, default="")
    # The runtime flavor (executor.build.flavors) its image builds FROM.
    runtime: Mapped[str] = mapped_column(String(32), default="minimal")
    source_sha256: Mapped[str] = mapped_column(String(64))
    # The source (up to the upload cap) and the build log are read by the builder and the
    # build-log routes only, never on the hot paths that load versions (event ingest,
    # activation listing, warm-pool sync): deferred, and raising if read without an
    # explicit undefer, so a new hot path cannot start loading them unnoticed.
    source: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    image_id: Mapped[str | None] = mapped_column(String(80), default=None)
    image_tag: Mapped[str | None] = mapped_column(String(200), default=None)
    # With a registry: the pushed image as ``repo@sha256:...``, the only reference runs use.
    image_digest: Mapped[str | None] = mapped_column(String(400), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    build_log: Mapped[str] = mapped_column(Text, default="", deferred=True, deferred_raiseload=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # `pip freeze` in the built image: the resolved dependency list.
    pip_freeze: Mapped[str | None] = mapped_column(Text, default=None)
    # Set when the image GC removed this version's image (it can no longer run).
    image_removed_at: Mapped[datetime | None] = mapped_column(default=None)

    plugin: Mapped[Plugin] = relationship(back_populates="versions")

    @property
    def run_image(self) -> str | None:
        """What a run starts: the registry digest when the image was pushed, else the tag."""
        return self.image_digest or self.image_tag


class Webhook(Base):
    """Where a webhook version's events go. ``header`` (the Authorization value sent) and
    ``signing_secret`` are secrets: never logged, never returned in full."""

    __tablename__ = "webhooks"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("plugin_versions.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text)
    header: Mapped[str | None] = mapped_column(Text, default=None)
    signing_secret: Mapped[str] = mapped_column(String(100))
    # As given (Kili's arguments); the version's ``handlers`` hold both, for event matching.
    handler_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    event_matcher: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class Activation(Base):
    __tablename__ = "activations"
    __table_args__ = (UniqueConstraint("plugin_id", "project_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    plugin_id: Mapped[str] = mapped_column(ForeignKey("plugins.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(200), index=True)
    # None means "the handler types of the version that runs".
    event_matcher: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # Plugin failures (failed, timed_out, oom_killed) are retried only this many times.
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    # A pinned version number; None follows the plugin's current version.
    version_number: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Placement: the OCI runtime its runs need (None: the operator's) and the labels a
    # node must carry to claim them (None: any node).
    runtime: Mapped[str | None] = mapped_column(String(40), default=None)
    node_selector: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    plugin: Mapped[Plugin] = relationship()


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
        Index("ix_invocations_status_queued", "status", "queued_at"),
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

    # Loaded with the invocation (one extra query) since every presenter shows them.
    gateway_calls: Mapped[list[GatewayCall]] = relationship(
        order_by="GatewayCall.id", lazy="selectin", viewonly=True
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
