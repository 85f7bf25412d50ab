"""What management clients read of tenants: the tenants, a tenant's keys, the plugins
active on a project, the audit trail. The REST API reads through these, never the store."""

from __future__ import annotations

from dataclasses import dataclass

from executor.schemas.plugins import ActivationPublic
from executor.service.catalog import describe_activation
from executor.store import activations as activation_store
from executor.store import audit as audit_store
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import ApiKey, AuditEntry, Tenant
from executor.tenancy.access import Caller

__all__ = ["AuditFilter", "audit_entries", "keys", "project_activations", "tenants"]


def tenants(db: Database) -> list[Tenant]:
    """Every tenant, by name."""
    with db.session() as session:
        return tenant_store.list_tenants(session)


def keys(db: Database, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys, oldest first, revoked ones included (NotFound: no such tenant)."""
    with db.session() as session:
        tenant_store.get_tenant(session, tenant_id)
        return tenant_store.list_keys(session, tenant_id)


def project_activations(db: Database, caller: Caller, project_id: str) -> list[ActivationPublic]:
    """The plugins active on one of the caller's tenant's projects (the operator: on any
    project; NotFound for another tenant's)."""
    with db.session() as session:
        if tenant_store.project_tenant(session, project_id) is None and caller.is_operator:
            return []
        tenant_store.owned_project(session, project_id, caller.tenant_id, may_claim=False)
        return [
            describe_activation(a)
            for a in activation_store.list_activations(session, project_id=project_id)
        ]


@dataclass(frozen=True)
class AuditFilter:
    """Which entries of the trail: one tenant's (None: every tenant's), older than
    ``before_id``, of an action (or family), an actor, a target."""

    tenant_id: str | None = None
    before_id: int | None = None
    action: str | None = None
    actor: str | None = None
    target: str | None = None


def audit_entries(db: Database, where: AuditFilter, limit: int) -> list[AuditEntry]:
    """A page of the audit trail, newest first."""
    with db.session() as session:
        return audit_store.list_entries(
            session,
            tenant_id=where.tenant_id,
            limit=limit,
            before_id=where.before_id,
            action=where.action,
            actor=where.actor,
            target=where.target,
        )
