"""The audit trail's filters (action, family of actions, actor, target) over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.tenancy import assign_project, create_key, create_tenant

pytestmark = pytest.mark.docker


def audit(server: RunningServer, **params: Any) -> list[tuple[str, str, str]]:
    response = server.api.get("/v1/audit", params={"tenant": "audited", **params})
    assert response.status_code == 200, response.text
    return [(e["action"], e["actor"], e["target"]) for e in response.json()]


def test_audit_filters_by_action_family_actor_and_target(server: RunningServer) -> None:
    create_tenant(server, "audited")
    assign_project(server, "audited", "audited-proj")
    key = create_key(server, "audited", ["admin"])
    assert server.api.delete(f"/v1/tenants/audited/keys/{key['id']}").status_code == 204
    everything = audit(server)
    assert [a for a, _, _ in everything] == [
        "key.revoke",
        "key.create",
        "project.assign",
        "tenant.create",
    ]
    assert audit(server, action="key.") == everything[:2]
    assert audit(server, action="key.revoke") == [("key.revoke", "operator", key["id"])]
    assert audit(server, target="audited-proj") == [("project.assign", "operator", "audited-proj")]
    assert audit(server, actor="operator") == everything
    assert audit(server, actor=f"key:{key['id']}") == []
    # "key" alone is neither an action nor a family: nothing matches, nothing is guessed.
    assert audit(server, action="key") == []


def test_an_action_filter_that_is_no_action_name_is_refused(server: RunningServer) -> None:
    response = server.api.get("/v1/audit", params={"action": "key%' OR 1=1"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert body["errors"][0]["field"] == "query.action"
