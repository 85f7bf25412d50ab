"""Tenants against a real executor: isolation, scopes, events, audit, quotas, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from executor.store.tables import Event
from tests.conftest import OPERATOR_KEY, ExecutorApi, RunningServer, ServerFactory
from tests.integration.tenancy import (
    ALL_SCOPES,
    as_key,
    assign_project,
    create_key,
    create_tenant,
)

pytestmark = pytest.mark.docker

HANDLER = (
    b"from plugin_runtime import PluginCore\n"
    b"class PluginHandler(PluginCore):\n"
    b"    def on_submit(self, label, asset_id):\n"
    b"        self.logger.info('ran %s', asset_id)\n"
)


def upload(api: ExecutorApi, name: str, padding: int = 0) -> Any:
    source = HANDLER + b"#" * padding + b"\n"
    return api.api.post("/v1/plugins", data={"name": name}, files={"file": ("main.py", source)})


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    server: RunningServer = server_factory()
    return server


@pytest.fixture(scope="module")
def tenants(server: RunningServer) -> Iterator[dict[str, ExecutorApi]]:
    """acme and globex, each with a full key, a project and a plugin named 'counter'
    active on it; plus acme's platform key (events:write only)."""
    apis: dict[str, ExecutorApi] = {}
    for tenant in ("acme", "globex"):
        create_tenant(server, tenant)
        assign_project(server, tenant, f"p-{tenant}")
        apis[tenant] = as_key(server, create_key(server, tenant, ALL_SCOPES)["key"])
        apis[tenant].push("counter")
        apis[tenant].activate("counter", f"p-{tenant}")
    apis["platform"] = as_key(server, create_key(server, "acme", ["events:write"])["key"])
    yield apis
    for api in apis.values():
        api.api.close()


def test_plugin_names_are_unique_per_tenant_and_hidden_from_others(
    server: RunningServer, tenants: dict[str, ExecutorApi]
) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    assert [p["projects"] for p in acme.api.get("/v1/plugins").json()] == [["p-acme"]]
    assert [p["projects"] for p in globex.api.get("/v1/plugins").json()] == [["p-globex"]]
    # The operator acts on the default tenant unless it names one.
    assert server.api.get("/v1/plugins").json() == []
    named = server.api.get("/v1/plugins", headers={"X-Tenant": "acme"}).json()
    assert [p["projects"] for p in named] == [["p-acme"]]
    # Another tenant's project answers like a missing one.
    for project in ("p-globex", "p-nobody"):
        response = acme.api.put(f"/v1/projects/{project}/plugins/counter")
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"


def test_an_event_runs_only_the_plugins_of_its_projects_tenant(
    tenants: dict[str, ExecutorApi],
) -> None:
    acme, globex, platform = tenants["acme"], tenants["globex"], tenants["platform"]
    accepted = platform.post_event(type="onSubmit", project_id="p-acme", asset_id="a-1", label={})
    assert len(accepted["invocations"]) == 1
    run = acme.wait_run(accepted["invocations"][0])
    assert run["status"] == "succeeded", run
    assert any("ran a-1" in r["content"] for r in acme.logs(run_id=run["id"]))
    # globex sees neither the run nor its logs.
    assert globex.api.get(f"/v1/invocations/{run['id']}").status_code == 404
    assert globex.logs(run_id=run["id"]) == []
    assert run["id"] not in [i["id"] for i in globex.api.get("/v1/invocations").json()]
    # The platform key posts events but reads no logs, and posts for acme's projects only.
    response = platform.api.get("/v1/logs")
    assert response.status_code == 403
    assert response.json()["scope"] == "logs:read"
    response = platform.api.post(
        "/v1/events",
        json={"type": "onSubmit", "project_id": "p-globex", "asset_id": "a", "label": {}},
    )
    assert response.status_code == 404, response.text


def test_audit_names_who_did_what(server: RunningServer, tenants: dict[str, ExecutorApi]) -> None:
    acme = tenants["acme"]
    key = create_key(server, "acme", ["logs:read"])
    assert acme.api.delete(f"/v1/tenants/acme/keys/{key['id']}").status_code == 204
    revoked = as_key(server, key["key"])
    assert revoked.api.get("/v1/logs").status_code == 401
    revoked.api.close()
    entries = server.api.get("/v1/audit", params={"tenant": "acme"}).json()
    actions = {(e["action"], e["actor"].split(":")[0]) for e in entries}
    assert {
        ("tenant.create", "operator"),
        ("project.assign", "operator"),
        ("key.create", "operator"),
        ("plugin.upload", "key"),
        ("plugin.activate", "key"),
        ("key.revoke", "key"),
    } <= actions
    assert all(e["tenant"] == "acme" for e in entries)
    # An admin key reads its own tenant's trail only; the operator reads every tenant's.
    own = acme.api.get("/v1/audit", params={"tenant": "globex"}).json()
    assert own and {e["tenant"] for e in own} == {"acme"}
    assert {"acme", "globex"} <= {e["tenant"] for e in server.api.get("/v1/audit").json()}
    # Keys are never in the trail, nor in key lists.
    assert key["key"] not in str(entries)
    assert "key" not in acme.api.get("/v1/tenants/acme/keys").json()[0]


def test_a_key_in_use_answers_401_from_its_revocation_on(
    server: RunningServer, tenants: dict[str, ExecutorApi]
) -> None:
    """The server trusts a key it accepted lately without asking the store again; revoking
    it through the API ends that at once."""
    key = create_key(server, "acme", ["logs:read"])
    reader = as_key(server, key["key"])
    for _ in range(3):
        assert reader.api.get("/v1/logs").status_code == 200
    assert tenants["acme"].api.delete(f"/v1/tenants/acme/keys/{key['id']}").status_code == 204
    refused = reader.api.get("/v1/logs")
    reader.api.close()
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "not_authenticated"
    assert f"API key {key['id']} was revoked" in refused.json()["message"]


def test_quotas_hit_and_recover(server: RunningServer) -> None:
    create_tenant(server, "small", max_plugins=1, max_versions=2)
    small = as_key(server, create_key(server, "small", ALL_SCOPES)["key"])
    for n in range(2):  # different sources: the same one would reuse its version
        assert upload(small, "one", padding=n).status_code == 202
    response = upload(small, "one", padding=2)
    assert response.status_code == 409
    assert response.json() | {"quota": "max_versions", "limit": 2} == response.json()
    response = upload(small, "two")
    assert response.status_code == 409
    assert response.json()["quota"] == "max_plugins"
    for version in (1, 2):
        small.wait_build("one", version)
    assert small.api.delete("/v1/plugins/one").status_code == 204
    assert upload(small, "two").status_code == 202
    small.wait_build("two", 1)
    small.api.close()


def test_every_route_caps_its_body(server: RunningServer) -> None:
    big = {"name": "x" * (server.settings.api.max_request_bytes + 1)}
    for method, path in (("POST", "/v1/tenants"), ("PUT", "/v1/plugins/counter/limits")):
        response = server.api.request(method, path, json=big)
        assert response.status_code == 413, (path, response.text)
        assert response.json()["code"] == "request_too_large"


def test_request_rate_and_upload_volume_per_key(server_factory: ServerFactory) -> None:
    limited: RunningServer = server_factory(
        key_requests_per_minute=30, key_upload_bytes_per_hour=1024 * 1024
    )
    create_tenant(limited, "busy")
    busy = as_key(limited, create_key(limited, "busy", ALL_SCOPES)["key"])
    statuses = [busy.api.get("/v1/plugins").status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    response = busy.api.get("/v1/plugins")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    time.sleep(retry_after)
    assert busy.api.get("/v1/plugins").status_code == 200
    # The operator key is not rate limited.
    assert all(limited.api.get("/v1/plugins").status_code == 200 for _ in range(40))
    # Upload bytes: 600 KiB fits the hour's MiB once, not twice.
    uploader = as_key(limited, create_key(limited, "busy", ["plugins:write"])["key"])
    assert upload(uploader, "big", padding=600 * 1024).status_code == 202
    response = upload(uploader, "big", padding=600 * 1024)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 60
    operator = as_key(limited, OPERATOR_KEY, tenant="busy")
    operator.wait_build("big", 1)
    for api in (busy, uploader, operator):
        api.api.close()


def test_a_platform_key_posting_events_is_counted_once_per_post_and_checked_every_time(
    server_factory: ServerFactory,
) -> None:
    """Posts of a key accepted lately skip FastAPI's dependency solving (``EventRoute``):
    each still counts once against the key's rate, a key without ``events:write`` is
    refused, and a body that does not validate gets FastAPI's 422."""
    limited: RunningServer = server_factory(key_requests_per_minute=4)
    create_tenant(limited, "poster")
    assign_project(limited, "poster", "p-poster")
    platform = as_key(limited, create_key(limited, "poster", ["events:write"])["key"])
    reader = as_key(limited, create_key(limited, "poster", ["plugins:read"])["key"])
    event = {"type": "custom", "project_id": "p-poster", "payload": {}}
    statuses = [platform.api.post("/v1/events", json=event).status_code for _ in range(3)]
    invalid = platform.api.post("/v1/events", json={**event, "project_id": "no spaces"})
    limited_out = platform.api.post("/v1/events", json=event)
    assert (statuses, invalid.status_code, limited_out.status_code) == ([202] * 3, 422, 429)
    assert invalid.json()["code"] == "invalid_identifier"
    assert [e["field"] for e in invalid.json()["errors"]] == ["body.project_id"]
    assert limited_out.json()["code"] == "rate_limited"
    assert reader.api.get("/v1/plugins").status_code == 200  # the key is known now
    refused = reader.api.post("/v1/events", json=event)
    assert (refused.status_code, refused.json()["code"]) == (403, "missing_scope")
    with limited.service.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 3
    for api in (platform, reader):
        api.api.close()


SLEEPER = (
    b"import time\n"
    b"from plugin_runtime import PluginCore\n"
    b"class PluginHandler(PluginCore):\n"
    b"    def on_submit(self, label, asset_id):\n"
    b"        time.sleep(2)\n"
)


def test_concurrent_runs_wait_for_the_tenant_quota(server: RunningServer) -> None:
    create_tenant(server, "serial", max_concurrent_runs=1)
    assign_project(server, "serial", "p-serial")
    serial = as_key(server, create_key(server, "serial", ALL_SCOPES)["key"])
    with serial.api:  # closed even when an assertion fails (the next test would see it)
        response = serial.api.post(
            "/v1/plugins", data={"name": "nap"}, files={"file": ("main.py", SLEEPER)}
        )
        assert response.status_code == 202, response.text
        serial.wait_build("nap", 1)
        serial.activate("nap", "p-serial")
        ids = [
            serial.post_event(type="onSubmit", project_id="p-serial", asset_id=f"a{i}", label={})[
                "invocations"
            ][0]
            for i in range(2)
        ]
        runs = sorted((serial.wait_run(i) for i in ids), key=lambda r: r["started_at"])
    first, second = runs
    assert first["status"] == second["status"] == "succeeded"
    assert second["started_at"] >= first["finished_at"]  # the quota held it, then let it run
