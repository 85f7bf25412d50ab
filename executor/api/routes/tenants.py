"""Tenants (operator key), their projects (operator key) and their API keys (admin scope)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, status

from executor.api.deps import Admin, OperatorOnly, ServiceDep
from executor.api.presenters import key_public, tenant_public
from executor.errors import NotFound
from executor.identifiers import KeyId, ProjectId, TenantName
from executor.schemas.tenancy import (
    KeyCreated,
    KeyIn,
    KeyPublic,
    ProjectPublic,
    TenantIn,
    TenantPublic,
    TenantUpdate,
)
from executor.service import tenant_reads
from executor.store import tenants as tenant_store
from executor.store.tables import Tenant, utcnow
from executor.tenancy.access import Caller, mint_key
from executor.tokens import hash_token

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


def _check_tenant(caller: Caller, tenant: str) -> None:
    """A tenant key manages its own tenant only; another answers 404 like a missing one."""
    if not caller.is_operator and caller.tenant_id != tenant:
        raise NotFound(f"no tenant {tenant!r}: a key manages its own tenant only")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantPublic)
def create_tenant(body: TenantIn, caller: OperatorOnly, service: ServiceDep) -> TenantPublic:
    """Create a tenant; then give it projects and keys."""
    with service.db.session() as session:
        tenant = tenant_store.add_tenant(
            session,
            Tenant(
                id=body.name,
                max_plugins=body.max_plugins,
                max_versions=body.max_versions,
                max_concurrent_runs=body.max_concurrent_runs,
            ),
        )
        public = tenant_public(tenant, service.settings)
    service.management.audit(caller, "tenant.create", body.name, tenant_id=body.name)
    return public


@router.get("", response_model=list[TenantPublic])
def list_tenants(_caller: OperatorOnly, service: ServiceDep) -> list[TenantPublic]:
    return [tenant_public(t, service.settings) for t in tenant_reads.tenants(service.db)]


@router.patch("/{tenant}", response_model=TenantPublic)
def update_tenant(
    tenant: TenantName, body: TenantUpdate, caller: OperatorOnly, service: ServiceDep
) -> TenantPublic:
    """Change a tenant's quotas: those sent replace its own (null: the operator's default),
    those left out stay. Lowering one below what the tenant uses refuses new plugins,
    versions or runs past it; nothing existing is removed."""
    changes = body.model_dump(include=body.model_fields_set)
    with service.db.session() as session:
        found = tenant_store.get_tenant(session, tenant)
        for field, value in changes.items():
            setattr(found, field, value)
        public = tenant_public(found, service.settings)
    service.management.audit(caller, "tenant.update", tenant, tenant_id=tenant, detail=changes)
    return public


@router.delete("/{tenant}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tenant(tenant: TenantName, caller: OperatorOnly, service: ServiceDep) -> None:
    """Delete a tenant with its keys and projects; 409 while it has plugins (the message
    says how many) and for ``default``. Its past runs and logs stay until retention."""
    service.management.delete_tenant(caller, tenant)


@router.put("/{tenant}/projects/{project_id}", response_model=ProjectPublic)
def assign_project(
    tenant: TenantName,
    project_id: ProjectId,
    caller: OperatorOnly,
    service: ServiceDep,
) -> ProjectPublic:
    """Give a platform project to a tenant: its events run that tenant's plugins only
    (409 if another tenant has it)."""
    with service.db.session() as session:
        tenant_store.get_tenant(session, tenant)
        project = tenant_store.assign_project(session, project_id, tenant)
        public = ProjectPublic(
            id=project.id, tenant=project.tenant_id, created_at=project.created_at
        )
    service.management.audit(caller, "project.assign", project_id, tenant_id=tenant)
    return public


@router.post("/{tenant}/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(tenant: TenantName, body: KeyIn, caller: Admin, service: ServiceDep) -> KeyCreated:
    """A new API key with the given scopes: the answer holds the key, shown this once."""
    _check_tenant(caller, tenant)
    secret = mint_key()
    expires_at = None
    if body.expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=body.expires_in_days)
    with service.db.session() as session:
        tenant_store.get_tenant(session, tenant)
        key = tenant_store.add_key(
            session,
            tenant,
            name=body.name,
            key_sha256=hash_token(secret),
            scopes=sorted(set(body.scopes)),
            expires_at=expires_at,
        )
        public = key_public(key)
    service.management.audit(
        caller, "key.create", public.id, tenant_id=tenant, detail={"scopes": public.scopes}
    )
    return KeyCreated(**public.model_dump(), key=secret)


@router.get("/{tenant}/keys", response_model=list[KeyPublic])
def list_keys(tenant: TenantName, caller: Admin, service: ServiceDep) -> list[KeyPublic]:
    """The tenant's keys (never the keys themselves), revoked ones included."""
    _check_tenant(caller, tenant)
    return [key_public(k) for k in tenant_reads.keys(service.db, tenant)]


@router.delete("/{tenant}/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(tenant: TenantName, key_id: KeyId, caller: Admin, service: ServiceDep) -> None:
    """Revoke a key: from now on it answers 401."""
    _check_tenant(caller, tenant)
    service.management.revoke_key(caller, tenant, key_id)
