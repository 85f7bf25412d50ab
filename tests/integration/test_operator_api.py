"""The operator's API (issue 26): tenant updates and deletion, X-Tenant from tenant keys,
rollback bodies, identical uploads reused, and the server's address opening the console."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, RunningServer, ServerFactory
from tests.integration.tenancy import as_key, create_key, create_tenant

pytestmark = pytest.mark.docker

HANDLER = b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    running: RunningServer = server_factory()
    return running


def upload(server: RunningServer, name: str, source: bytes, tenant: str = "default") -> Any:
    return server.api.post(
        "/v1/plugins",
        headers={"X-Tenant": tenant},
        data={"name": name},
        files={"file": ("main.py", source)},
    )


def test_the_servers_address_opens_the_console(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method in ("GET", "HEAD"):
            response = client.request(method, "/")
            assert response.status_code == 307, method
            assert response.headers["location"] == "/ui/"
        assert client.get("/", follow_redirects=True).text.startswith("<!doctype html>")
    assert "/" not in server.api.get("/openapi.json").json()["paths"]


def test_a_tenant_key_naming_another_tenant_is_refused(server: RunningServer) -> None:
    create_tenant(server, "xt-own")
    key = create_key(server, "xt-own", ["plugins:read"])["key"]
    for tenant in ("default", "no-such-tenant"):  # the same answer, existing or not
        response = get_as(server, key, tenant, "/v1/plugins")
        assert response.status_code == 403, response.text
        assert response.json() == {
            "code": "missing_scope",
            "scope": "operator",
            "message": "only the operator key acts on another tenant (X-Tenant, --tenant): this "
            "key acts on its own tenant 'xt-own'; leave the tenant out",
        }
    assert get_as(server, key, "xt-own", "/v1/plugins").status_code == 200


def get_as(server: RunningServer, key: str, tenant: str | None, path: str) -> httpx.Response:
    caller = as_key(server, key, tenant=tenant)
    try:
        return caller.api.get(path)
    finally:
        caller.api.close()


def test_tenant_quotas_change_and_bad_updates_change_nothing(server: RunningServer) -> None:
    create_tenant(server, "quota-team", max_versions=7)
    before = tenant(server, "quota-team")
    for body in ({"max_plugins": 0}, {"max_plugins": "many"}, {"name": "renamed"}):
        response = server.api.patch("/v1/tenants/quota-team", json=body)
        assert response.status_code == 422, (body, response.text)
    assert tenant(server, "quota-team") == before
    missing = server.api.patch("/v1/tenants/no-such-team", json={"max_plugins": 2})
    assert missing.status_code == 404
    assert missing.json()["message"] == (
        "no tenant 'no-such-team': see GET /v1/tenants (operator key)"
    )
    admin = create_key(server, "quota-team", ["admin"])["key"]
    caller = as_key(server, admin)
    refused = caller.api.patch("/v1/tenants/quota-team", json={"max_plugins": 9})
    caller.api.close()
    assert refused.status_code == 403 and refused.json()["scope"] == "operator"
    changed = server.api.patch("/v1/tenants/quota-team", json={"max_plugins": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json() | {"max_plugins": 2, "max_versions": 7} == changed.json()
    assert tenant(server, "quota-team") == changed.json()


def tenant(server: RunningServer, name: str) -> dict[str, Any]:
    (found,) = [t for t in server.api.get("/v1/tenants").json() if t["name"] == name]
    return dict(found)


def test_a_tenant_with_plugins_stays_and_one_without_goes_with_its_keys(
    server: RunningServer,
) -> None:
    create_tenant(server, "full-team")
    key = create_key(server, "full-team", ["plugins:read"])["key"]
    reader = as_key(server, key)
    assert reader.api.get("/v1/plugins").status_code == 200  # now trusted without the store
    assert upload(server, "keeper", HANDLER, tenant="full-team").status_code == 202
    refused = server.api.delete("/v1/tenants/full-team")
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "conflict",
        "message": "tenant 'full-team' has 1 plugin: delete them first (see plugin-executor "
        "list --tenant full-team)",
        "plugins": 1,
    }
    assert reader.api.get("/v1/plugins").json()[0]["name"] == "keeper"  # nothing changed
    wait_built(server, "keeper", "full-team")
    assert server.api.delete("/v1/plugins/keeper", headers={"X-Tenant": "full-team"}).is_success
    assert server.api.delete("/v1/tenants/full-team").status_code == 204
    gone = reader.api.get("/v1/plugins")  # at once, although the key was trusted
    assert gone.status_code == 401 and gone.json()["code"] == "not_authenticated"
    acting = server.api.get("/v1/plugins", headers={"X-Tenant": "full-team"})
    assert acting.status_code == 404
    assert server.api.delete("/v1/tenants/full-team").status_code == 404
    default = server.api.delete("/v1/tenants/default")
    assert default.status_code == 409 and "cannot be deleted" in default.json()["message"]
    reader.api.close()


def wait_built(server: RunningServer, name: str, tenant: str) -> None:
    operator = as_key(server, OPERATOR_KEY, tenant=tenant)
    operator.wait_build(name, 1)
    operator.api.close()


def test_identical_uploads_reuse_their_version(server: RunningServer) -> None:
    first = upload(server, "same-twice", HANDLER)
    again = upload(server, "same-twice", HANDLER)  # while v1 still builds
    assert first.status_code == again.status_code == 202
    assert first.json()["reused"] is False
    assert again.json() | {"version": 1, "reused": True} == again.json()
    assert server.wait_build("same-twice", 1)["status"] == "ACTIVE"
    after = upload(server, "same-twice", HANDLER)
    assert after.json() | {"version": 1, "reused": True, "status": "ACTIVE"} == after.json()
    changed = upload(server, "same-twice", HANDLER + b"# changed\n")
    assert changed.json() | {"version": 2, "reused": False} == changed.json()
    assert server.wait_build("same-twice", 2)["status"] == "ACTIVE"
    # Back to v1's files: v1 serves again, no v3.
    back = upload(server, "same-twice", HANDLER)
    assert back.json() | {"version": 1, "reused": True} == back.json()
    plugin = server.api.get("/v1/plugins/same-twice").json()
    assert (plugin["latest_version"], plugin["current_version"]) == (2, 1)


def test_rollback_bodies_are_checked(server: RunningServer) -> None:
    assert upload(server, "rb-bodies", HANDLER).status_code == 202
    server.wait_build("rb-bodies", 1)
    for body in ({"to": 0}, {"to": "one"}, {"to": 1, "more": True}, [1]):
        response = server.api.post("/v1/plugins/rb-bodies/rollback", json=body)
        assert response.status_code == 422, (body, response.text)
    assert server.api.get("/v1/plugins/rb-bodies").json()["current_version"] == 1
    alone = server.api.post("/v1/plugins/rb-bodies/rollback", json={"to": 1})
    assert alone.status_code == 409
    assert alone.json()["message"] == "plugin 'rb-bodies' already serves v1: nothing to change"
