"""Tenant and key commands (operator key, or an admin key for its own tenant's keys):
``tenants create|update|delete|list|assign-project``, ``keys create|list|revoke``, ``audit``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from executor.cli.common import (
    KeyArg,
    ProjectArg,
    TenantArg,
    TenantOpt,
    WideOpt,
    call,
    checks,
    client,
)
from executor.cli.render import console, err_console, print_json, print_table
from executor.identifiers import IdKind
from executor.statuses import Scope

__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

QUOTAS = ("max_plugins", "max_versions", "max_concurrent_runs")
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


@tenants_app.command("update")
def update_tenant(
    name: TenantArg,
    max_plugins: Annotated[int | None, typer.Option(help="New quota.")] = None,
    max_versions: Annotated[int | None, typer.Option(help="Versions per plugin.")] = None,
    max_concurrent_runs: Annotated[int | None, typer.Option(help="Runs at once.")] = None,
    default: Annotated[
        list[str] | None,
        typer.Option("--default", help="A quota back to the operator's default (repeatable)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a tenant's quotas; those not named stay."""
    body: dict[str, Any] = {
        field: value
        for field, value in (
            ("max_plugins", max_plugins),
            ("max_versions", max_versions),
            ("max_concurrent_runs", max_concurrent_runs),
        )
        if value is not None
    }
    body |= dict.fromkeys((d.replace("-", "_") for d in default or []), None)
    if not body:
        err_console.print(
            "[red]error:[/] name a quota to change (--max-plugins, --max-versions, "
            "--max-concurrent-runs, --default QUOTA)"
        )
        raise typer.Exit(2)
    tenant = call(client().request, "PATCH", f"/v1/tenants/{name}", json=body)
    if as_json:
        print_json(tenant)
        return
    quotas = ", ".join(f"{q} {'unlimited' if tenant[q] is None else tenant[q]}" for q in QUOTAS)
    console.print(f"Tenant {tenant['name']} updated: {quotas}.", markup=False, highlight=False)


@tenants_app.command("delete")
def delete_tenant(name: TenantArg) -> None:
    """Delete a tenant with its keys and projects (refused while it has plugins)."""
    call(client().request, "DELETE", f"/v1/tenants/{name}")
    console.print(f"Tenant {name} deleted.", markup=False, highlight=False)


@tenants_app.command("list")
def list_tenants(wide: WideOpt = False, as_json: JsonOpt = False) -> None:
    """List tenants and their quotas."""
    tenants = call(client().request, "GET", "/v1/tenants")
    if as_json:
        print_json(tenants)
        return
    columns = ["name", "max_plugins", "max_versions", "max_concurrent_runs", "created_at"]
    rows = ([t[c] for c in columns] for t in tenants)
    print_table("Tenants", columns, rows, keep=("name",), wide=wide)


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
def list_keys(tenant: TenantOpt, wide: WideOpt = False, as_json: JsonOpt = False) -> None:
    """List a tenant's keys (never the keys themselves), with when each was last used."""
    keys = call(client().request, "GET", f"/v1/tenants/{tenant}/keys")
    if as_json:
        print_json(keys)
        return
    columns = ["id", "name", "scopes", "last_used", "created", "expires", "revoked"]
    rows = (
        [
            k["id"],
            k["name"],
            " ".join(k["scopes"]),
            *(_minute(k[f]) for f in ("last_used_at", "created_at", "expires_at", "revoked_at")),
        ]
        for k in keys
    )
    print_table(f"Keys of {tenant}", columns, rows, keep=("id",), wide=wide)


def _minute(iso: str | None) -> str:
    """An API time to the minute, UTC ("never" for none)."""
    return "never" if iso is None else iso[:16].replace("T", " ")


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
