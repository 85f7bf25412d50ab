"""Tenants, their keys and projects, and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from executor.identifiers import TenantName
from executor.schemas.base import Strict
from executor.statuses import Scope

__all__ = [
    "AuditEntryPublic",
    "KeyCreated",
    "KeyIn",
    "KeyPublic",
    "ProjectPublic",
    "TenantIn",
    "TenantPublic",
    "TenantUpdate",
]


class TenantIn(Strict):
    """Body of POST /v1/tenants; quotas left out are the operator's defaults."""

    name: TenantName = Field(description="Lower-case letters, digits, _ and -.")
    max_plugins: int | None = Field(None, ge=1, le=1_000_000)
    max_versions: int | None = Field(None, ge=1, le=1_000_000, description="Per plugin.")
    max_concurrent_runs: int | None = Field(None, ge=1, le=1_000_000)


class TenantUpdate(Strict):
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


class KeyIn(Strict):
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
