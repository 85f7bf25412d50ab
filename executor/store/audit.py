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
    session: Session,
    *,
    tenant_id: str | None,
    limit: int,
    before_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    """Newest first; ``tenant_id`` None means every tenant; ``before_id`` pages back.

    ``action`` is an action (``plugin.delete``) or, ending in ``.``, a family of them
    (``plugin.``); ``actor`` and ``target`` match exactly."""
    query = select(AuditEntry)
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if action is not None and action.endswith("."):
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    elif action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
