"""The audit trail: who did which management action, recorded with the change it made."""

from __future__ import annotations

from typing import Any

from executor.store import audit as audit_store
from executor.store.db import Session
from executor.tenancy.access import Caller

__all__ = ["record"]


def record(
    session: Session,
    caller: Caller,
    action: str,
    target: str,
    *,
    tenant_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add ``caller``'s ``action`` on ``target`` (in ``tenant_id``, default the caller's) to
    the trail, in ``session``: the entry commits or rolls back with the change itself."""
    audit_store.add_entry(
        session,
        tenant_id=tenant_id or caller.tenant_id,
        actor=caller.actor,
        action=action,
        target=target,
        detail=detail,
    )
