"""The audit trail: who did which management action, and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from executor.api.deps import Admin, ServiceDep
from executor.api.presenters import audit_public
from executor.bounds import MAX_INT64
from executor.identifiers import TenantName
from executor.schemas.tenancy import AuditEntryPublic
from executor.service import tenant_reads

router = APIRouter(prefix="/v1/audit", tags=["audit"])

ACTION_PATTERN = r"^[a-z]+(\.[a-z_]*)?$"


@router.get("", response_model=list[AuditEntryPublic])
def list_audit(
    caller: Admin,
    service: ServiceDep,
    tenant: Annotated[
        TenantName | None, Query(description="Operator key: only this tenant.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_INT64, description="Entries older than this id.")
    ] = None,
    action: Annotated[
        str | None,
        Query(
            pattern=ACTION_PATTERN,
            description="One action (plugin.delete) or, ending in '.', a family (plugin.).",
        ),
    ] = None,
    actor: Annotated[
        str | None, Query(max_length=100, description="'operator' or 'key:<key id>'.")
    ] = None,
    target: Annotated[str | None, Query(max_length=300, description="What was acted on.")] = None,
) -> list[AuditEntryPublic]:
    """Newest first. The operator key reads every tenant's trail; an admin key its own."""
    tenant_id = tenant if caller.is_operator else caller.tenant_id
    where = tenant_reads.AuditFilter(tenant_id, before, action, actor, target)
    rows = tenant_reads.audit_entries(service.db, where, limit)
    return [audit_public(r) for r in rows]
