"""Per-tenant quotas: the tenant's own, else the operator's defaults (Settings)."""

from __future__ import annotations

from dataclasses import dataclass

from executor.settings import TenancySettings
from executor.store.tables import Tenant

__all__ = ["Quotas", "quotas_for"]


@dataclass(frozen=True)
class Quotas:
    max_plugins: int
    max_versions: int  # per plugin
    max_concurrent_runs: int | None  # None: only the executor-wide limits


def quotas_for(tenant: Tenant, defaults: TenancySettings) -> Quotas:
    """The quotas ``tenant`` works under."""
    return Quotas(
        max_plugins=tenant.max_plugins or defaults.tenant_max_plugins,
        max_versions=tenant.max_versions or defaults.tenant_max_versions,
        max_concurrent_runs=tenant.max_concurrent_runs or defaults.tenant_max_concurrent_runs,
    )
