"""Helpers for tenant tests: tenants, keys, and API clients that carry a tenant's key."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ExecutorApi, RunningServer

ALL_SCOPES = ["plugins:write", "plugins:read", "logs:read", "events:write", "admin"]


def create_tenant(server: RunningServer, name: str, **quotas: Any) -> None:
    response = server.api.post("/v1/tenants", json={"name": name, **quotas})
    assert response.status_code == 201, response.text


def assign_project(server: RunningServer, tenant: str, project: str) -> None:
    response = server.api.put(f"/v1/tenants/{tenant}/projects/{project}")
    assert response.status_code == 200, response.text


def create_key(
    server: RunningServer, tenant: str, scopes: list[str], **fields: Any
) -> dict[str, Any]:
    """A new key of ``tenant`` (its body: ``id``, ``key``, ...), made with the operator key."""
    body = {"name": "test", "scopes": scopes, **fields}
    response = server.api.post(f"/v1/tenants/{tenant}/keys", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def as_key(server: RunningServer, key: str, tenant: str | None = None) -> ExecutorApi:
    """An ``ExecutorApi`` on ``server`` that sends ``key`` (and ``tenant`` as ``X-Tenant``);
    close its ``api`` when done."""
    headers = {"Authorization": f"Bearer {key}"}
    if tenant is not None:
        headers["X-Tenant"] = tenant
    api = httpx.Client(base_url=server.url, headers=headers, timeout=60)
    return ExecutorApi(api=api, url=server.url, docker_client=server.docker_client)
