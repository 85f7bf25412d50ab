"""Queries on tenants, their API keys and their projects."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from executor.errors import Conflict, NotFound
from executor.store.tables import DEFAULT_TENANT, ApiKey, Plugin, Project, Tenant, utcnow

__all__ = [
    "KEY_CHANNEL",
    "add_key",
    "add_tenant",
    "assign_project",
    "delete_tenant",
    "get_tenant",
    "key_by_hash",
    "list_keys",
    "list_projects",
    "list_tenants",
    "mark_keys_used",
    "owned_project",
    "project_tenant",
    "revoke_key",
]

# Where a revoked (or deleted) key's id is announced, at the commit, to every API process:
# each drops the key from its cache (``executor.tenancy.access.Authenticator``).
KEY_CHANNEL = "executor_key_revoked"


def _announce_revoked(session: Session, key_ids: list[str]) -> None:
    """``NOTIFY`` each key id when the transaction commits (PostgreSQL only: on SQLite the
    one process forgets the keys itself)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key_id in key_ids:
        session.execute(
            text("SELECT pg_notify(:channel, :key_id)"), {"channel": KEY_CHANNEL, "key_id": key_id}
        )


def add_tenant(session: Session, tenant: Tenant) -> Tenant:
    """Store a new tenant; Conflict if the name is taken."""
    if session.get(Tenant, tenant.id) is not None:
        raise Conflict(f"tenant {tenant.id!r} already exists: pick another name")
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}: see GET /v1/tenants (operator key)")
    return tenant


def delete_tenant(session: Session, tenant_id: str) -> list[str]:
    """Delete a tenant with its keys and projects: the ids of the keys it had. Conflict
    while it has plugins (its runs and logs stay until retention purges them)."""
    if tenant_id == DEFAULT_TENANT:
        raise Conflict(
            f"tenant {DEFAULT_TENANT!r} cannot be deleted: the operator key acts on it by default"
        )
    tenant = get_tenant(session, tenant_id)
    plugins = int(session.scalar(select(func.count()).where(Plugin.tenant_id == tenant_id)) or 0)
    if plugins:
        raise Conflict(
            f"tenant {tenant_id!r} has {plugins} plugin{'s' if plugins != 1 else ''}: delete "
            f"them first (see plugin-executor list --tenant {tenant_id})",
            plugins=plugins,
        )
    key_ids = list(session.scalars(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id)))
    session.execute(delete(ApiKey).where(ApiKey.tenant_id == tenant_id))
    session.execute(delete(Project).where(Project.tenant_id == tenant_id))
    session.delete(tenant)
    session.flush()
    _announce_revoked(session, key_ids)
    return key_ids


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def add_key(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    key_sha256: str,
    scopes: list[str],
    expires_at: datetime | None,
) -> ApiKey:
    key = ApiKey(
        tenant_id=tenant_id, name=name, key_sha256=key_sha256, scopes=scopes, expires_at=expires_at
    )
    session.add(key)
    session.flush()
    return key


def key_by_hash(session: Session, key_sha256: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_sha256 == key_sha256))


def list_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
    return list(session.scalars(query))


def mark_keys_used(session: Session, used: dict[str, datetime]) -> None:
    """Record when each key (by id) was last used; an older time never replaces a newer."""
    for key_id, at in used.items():
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at),
            )
            .values(last_used_at=at)
        )


def revoke_key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    """Revoke one of the tenant's keys (again is a no-op); NotFound if it has no such key."""
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"tenant {tenant_id!r} has no key {key_id!r}: see its key list")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    _announce_revoked(session, [key.id])
    return key


def project_tenant(session: Session, project_id: str) -> str | None:
    """The tenant a project belongs to, None if it belongs to none yet."""
    project = session.get(Project, project_id)
    return project.tenant_id if project is not None else None


def assign_project(session: Session, project_id: str, tenant_id: str) -> Project:
    """Give a project to a tenant (again is a no-op); Conflict if another tenant has it."""
    project = session.get(Project, project_id)
    if project is None:
        project = Project(id=project_id, tenant_id=tenant_id)
        session.add(project)
        session.flush()
    elif project.tenant_id != tenant_id:
        raise Conflict(
            f"project {project_id!r} belongs to tenant {project.tenant_id!r}: a project has "
            "one tenant"
        )
    return project


def list_projects(session: Session, tenant_id: str) -> list[Project]:
    query = select(Project).where(Project.tenant_id == tenant_id).order_by(Project.id)
    return list(session.scalars(query))


def owned_project(session: Session, project_id: str, tenant_id: str, *, may_claim: bool) -> None:
    """Check that the project is the tenant's; ``may_claim`` gives it an unowned one.

    NotFound otherwise, the same answer whether another tenant has it or none does.
    """
    owner = project_tenant(session, project_id)
    if owner is None and may_claim:
        assign_project(session, project_id, tenant_id)
    elif owner != tenant_id:
        raise NotFound(
            f"no project {project_id!r} for tenant {tenant_id!r}: the operator assigns "
            "projects to tenants (plugin-executor tenants assign-project)"
        )
