"""Tenants and what is theirs apart from plugins and runs: keys, key buckets, upload
tickets, projects, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from executor.store.tables.base import Base, new_id, tenant_column, utcnow

__all__ = [
    "ApiKey",
    "AuditEntry",
    "KeyBucket",
    "Project",
    "Tenant",
    "UploadTicket",
]


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
    tenant_id: Mapped[str] = tenant_column()
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
    tenant_id: Mapped[str] = tenant_column()
    plugin_name: Mapped[str] = mapped_column(String(200))
    is_update: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    archive: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class Project(Base):
    """A platform project and the tenant whose plugins its events run."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = tenant_column()
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
