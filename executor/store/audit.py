"""The audit trail of management actions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from executor.store.tables import AuditEntry

__all__ = ["add_entry", "list_entries"]


def add_entry(
    session: Session,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail)
    )


def list_entries(
    session: Session, *, tenant_id: str | None, limit: int, before_id: int | None = None
) -> list[AuditEntry]:
    """Newest first; ``tenant_id`` None means every tenant; ``before_id`` pages back."""
    query = select(AuditEntry)
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
