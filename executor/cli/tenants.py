"""Tenant and key commands (operator key, or an admin key for its own tenant's keys):
``tenants create|list|assign-project``, ``keys create|list|revoke``, ``audit``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from executor.cli.common import KeyArg, ProjectArg, TenantArg, TenantOpt, call, checks, client
from executor.cli.render import console, err_console, print_json, print_table
from executor.identifiers import IdKind
from executor.statuses import Scope

__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

tenants_app = typer.Typer(no_args_is_help=True, help="Tenants (operator key).")
keys_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys.")


@tenants_app.command("create")
def create_tenant(
    name: TenantArg,
    max_plugins: Annotated[int | None, typer.Option(help="Quota; default: the operator's.")] = None,
    max_versions: Annotated[int | None, typer.Option(help="Versions per plugin.")] = None,
    max_concurrent_runs: Annotated[int | None, typer.Option(help="Runs at once.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant."""
    body = {
        "name": name,
        "max_plugins": max_plugins,
        "max_versions": max_versions,
        "max_concurrent_runs": max_concurrent_runs,
    }
    tenant = call(client().request, "POST", "/v1/tenants", json=body)
    if as_json:
        print_json(tenant)
        return
    console.print(f"Tenant {tenant['name']} created.")


@tenants_app.command("list")
def list_tenants(as_json: JsonOpt = False) -> None:
    """List tenants and their quotas."""
    tenants = call(client().request, "GET", "/v1/tenants")
    if as_json:
        print_json(tenants)
        return
    columns = ["name", "max_plugins", "max_versions", "max_concurrent_runs", "created_at"]
    print_table("Tenants", columns, ([t[c] for c in columns] for t in tenants))


@tenants_app.command("assign-project")
def assign_project(project: ProjectArg, tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Give a platform project to a tenant: its events run that tenant's plugins only."""
    result = call(client().request, "PUT", f"/v1/tenants/{tenant}/projects/{project}")
    if as_json:
        print_json(result)
        return
    console.print(f"Project {project} belongs to tenant {tenant}.")


@keys_app.command("create")
def create_key(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several scopes.")],
    expires_in_days: Annotated[
        float | None, typer.Option(help="Default: the key does not expire.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; it is printed this once (only its hash is kept)."""
    body: dict[str, Any] = {
        "name": name,
        "scopes": [s.value for s in scope],
        "expires_in_days": expires_in_days,
    }
    key = call(client().request, "POST", f"/v1/tenants/{tenant}/keys", json=body)
    if as_json:
        print_json(key)
        return
    console.print(f"Key {key['id']} for tenant {tenant} ({', '.join(key['scopes'])}).")
    err_console.print("Shown once, keep it now:")
    console.print(key["key"], markup=False, highlight=False)


@keys_app.command("list")
def list_keys(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's keys (never the keys themselves)."""
    keys = call(client().request, "GET", f"/v1/tenants/{tenant}/keys")
    if as_json:
        print_json(keys)
        return
    columns = ["id", "name", "scopes", "created_at", "expires_at", "revoked_at"]
    rows = ([" ".join(k[c]) if c == "scopes" else k[c] for c in columns] for k in keys)
    print_table(f"Keys of {tenant}", columns, rows)


@keys_app.command("revoke")
def revoke_key(key_id: KeyArg, tenant: TenantOpt) -> None:
    """Revoke a key: it answers 401 from now on."""
    call(client().request, "DELETE", f"/v1/tenants/{tenant}/keys/{key_id}")
    console.print(f"Key {key_id} revoked.")


def audit(
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", help="Only this tenant.", callback=checks(IdKind.TENANT)),
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest entries shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Who did which management action, and when (newest first)."""
    params: dict[str, Any] = {"limit": limit, "tenant": tenant}
    entries = call(
        client().request, "GET", "/v1/audit", params={k: v for k, v in params.items() if v}
    )
    if as_json:
        print_json(entries)
        return
    columns = ["at", "tenant", "actor", "action", "target"]
    print_table("Audit", columns, ([e[c] for c in columns] for e in entries))


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")
    app.command()(audit)
