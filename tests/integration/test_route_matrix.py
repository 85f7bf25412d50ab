"""Every route of the app, called as six callers: no key, a revoked key, an expired key, a
key of another tenant, a key missing the route's scope, and the right key.

The routes come from the app's own route table and each one's scope from its
``RequireScope`` dependency, so a route added later is covered without editing this test
(a new path parameter or request body model needs one sample value below).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from executor.api.deps import RequireScope
from executor.tenancy.access import OPERATOR
from tests.conftest import OPERATOR_KEY, PLUGINS, RunningServer, ServerFactory
from tests.integration.tenancy import (
    ALL_SCOPES,
    as_key,
    assign_project,
    create_key,
    create_tenant,
)

pytestmark = pytest.mark.docker

# Probes carry no key; everything else needs one. Besides these API routes, the OpenAPI
# schema, its docs pages and the console's static files are public: they hold no data.
PUBLIC = {"/healthz", "/readyz"}
PUBLIC_PAGES = ["/openapi.json", "/docs", "/redoc", "/ui/"]
# The Kili-compatible GraphQL API authorizes each operation inside one route and answers its
# errors as GraphQL errors (an HTTP 401 would make the Kili SDK retry for minutes); the
# upload URL is authorized by its one-time ticket. tests/integration/test_kili_sdk.py.
GRAPHQL = {"/graphql", "/graphql/upload"}
PROJECT = "matrix-project"
PUBLIC_HOOK = "http://93.184.216.34/hook"
# Path parameters of one route that differ from the fixture's: the tenant deleted is one
# made by the matrix (the one whose keys the other routes use has plugins: 409).
ROUTE_PARAMS = {("DELETE", "/v1/tenants/{tenant}"): {"tenant": "matrix-made"}}
# Request bodies by OpenAPI schema name (multipart uploads: the form fields and file).
BODIES: dict[str, dict[str, Any]] = {
    "ActivationIn": {"json": {}},
    "EventIn": {"json": {"type": "onSubmit", "project_id": PROJECT, "asset_id": "a1", "label": {}}},
    "PluginLimits": {"json": {}},
    "TenantIn": {"json": {"name": "matrix-made"}},
    "TenantUpdate": {"json": {"max_plugins": 50}},
    "RollbackIn": {"json": {}},
    "KeyIn": {"json": {"name": "matrix", "scopes": ["plugins:read"]}},
    # A public address literal: checked without a resolver, and nothing is sent at create.
    "WebhookIn": {"json": {"webhook_url": PUBLIC_HOOK, "plugin_name": "matrix-made-hook"}},
    "WebhookUpdate": {"json": {}},
    "Body_upload_plugin_v1_plugins_post": {
        "data": {"name": "uploaded"},  # not "counter": the other tenant uploads it too
        "files": {
            "file": (
                "main.py",
                (
                    b"from plugin_runtime import PluginCore\n"
                    b"class PluginHandler(PluginCore):\n"
                    b"    def on_submit(self, label, asset_id): pass\n"
                ),
            )
        },
    },
}


@dataclass
class Fixture:
    server: RunningServer
    keys: dict[str, str]  # case -> key
    missing: dict[str, str]  # scope -> a key of the tenant with every other scope
    params: dict[str, str]  # path parameter -> value owned by the tenant


def _wait_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.time()))


@pytest.fixture(scope="module")
def fixture(
    server_factory: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fixture]:
    server = server_factory()
    create_tenant(server, "alpha")
    create_tenant(server, "beta")
    assign_project(server, "alpha", PROJECT)
    expired = create_key(server, "alpha", ALL_SCOPES, expires_in_days=1 / 86400)
    expires_at = time.time() + 1.5
    right = create_key(server, "alpha", ALL_SCOPES)
    revoked = create_key(server, "alpha", ALL_SCOPES)
    server.api.delete(f"/v1/tenants/alpha/keys/{revoked['id']}").raise_for_status()
    spare = create_key(server, "alpha", ["logs:read"])
    missing = {
        scope: create_key(server, "alpha", [s for s in ALL_SCOPES if s != scope])["key"]
        for scope in ALL_SCOPES
    }
    other = create_key(server, "beta", ALL_SCOPES)
    alpha = as_key(server, right["key"])
    alpha.push("counter")
    # Another source: the same one would reuse v1, and a rollback needs a version before.
    changed = tmp_path_factory.mktemp("counter") / "main.py"
    changed.write_bytes((PLUGINS / "counter" / "main.py").read_bytes() + b"\n# v2\n")
    alpha.push(changed, name="counter")
    alpha.activate("counter", PROJECT)
    run = alpha.run_event(type="onSubmit", project_id=PROJECT, asset_id="a0", label={})
    hook = {"webhook_url": PUBLIC_HOOK, "plugin_name": "matrix-hook"}
    alpha.api.post("/v1/webhooks", json=hook).raise_for_status()
    alpha.api.close()
    _wait_until(expires_at)
    yield Fixture(
        server=server,
        keys={
            "revoked": revoked["key"],
            "expired": expired["key"],
            "other": other["key"],
            "right": right["key"],
        },
        missing=missing,
        params={
            "name": "counter",
            "version": "1",
            "project_id": PROJECT,
            "invocation_id": run["id"],
            "tenant": "alpha",
            "key_id": spare["id"],
            "webhook": "matrix-hook",
            "node_id": str(server.service.engine.node_id),  # drained last: no runs follow
        },
    )


def _scope(dependant: Dependant) -> str | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RequireScope):
            return dependency.call.scope
        found = _scope(dependency)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as mounted, e.g. /v1/plugins/{name}
    route: APIRoute

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def _api_routes(app: Any) -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of each API route, routers included (FastAPI >= 0.165 keeps
    included routers as such in ``app.routes``)."""
    if not hasattr(routing, "iter_route_contexts"):
        yield from ((r.path, r) for r in app.routes if isinstance(r, APIRoute))
        return
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            # A context's path is None only for routes without one (mounts); an APIRoute has it.
            assert context.path_format is not None, route
            yield context.path_format, route


def _routes(fixture: Fixture) -> list[Route]:
    """Every (method, API route): reads first, then writes, deletes last (the longest paths
    first, so a deactivation runs before its plugin is deleted)."""
    found = [
        Route(method, path, route)
        for path, route in _api_routes(fixture.server.service_app)
        for method in sorted(route.methods or ())  # None: a route for every method (none here)
        if path not in GRAPHQL
    ]
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    return sorted(found, key=lambda r: (order[r.method], r.method == "DELETE" and -len(r.path)))


def _request(fixture: Fixture, route: Route) -> dict[str, Any]:
    """URL and body of a request that the right key would see succeed."""
    method = route.method
    for param in route.params:
        assert param in fixture.params, f"add a sample value for path parameter {param!r}"
    url = route.path.format(**(fixture.params | ROUTE_PARAMS.get((method, route.path), {})))
    operation = fixture.server.service_app.openapi()["paths"][route.path][method.lower()]
    body: dict[str, Any] = {}
    if "requestBody" in operation:
        content = next(iter(operation["requestBody"]["content"].values()))
        schema = content["schema"]
        ref = next(s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s)
        name = ref.rsplit("/", 1)[-1]
        assert name in BODIES, f"add a sample body for {name} ({method} {route.path})"
        body = BODIES[name]
    return {"method": method, "url": url, **body}


def _call(fixture: Fixture, request: dict[str, Any], key: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    # Streamed so that a Server-Sent Events route answers without being read to its end.
    with (
        httpx.Client(base_url=fixture.server.url, timeout=30) as client,
        client.stream(headers=headers, **request) as response,
    ):
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.read()
            return response.status_code, response.json() if body else None
        return response.status_code, None


def _references_tenant(request: dict[str, Any], route: Route) -> bool:
    """Whether the request names something of the tenant (a path parameter or a project)."""
    return bool(route.params) or "project_id" in request.get("json", {})


def test_every_route_answers_each_caller_as_expected(fixture: Fixture) -> None:
    checked = 0
    for route in _routes(fixture):
        scope = _scope(route.route.dependant)
        request = _request(fixture, route)
        where = f"{route.method} {route.path}"
        if scope is None:
            assert route.path in PUBLIC, f"{where} needs no key: give it a scope dependency"
            status, _ = _call(fixture, request, None)
            assert 200 <= status < 300, f"{where} (public) answered {status}"
            continue
        for case in ("none", "revoked", "expired"):
            status, body = _call(fixture, request, fixture.keys.get(case))
            assert status == 401, f"{where} with {case} key answered {status}: {body}"
            assert body["code"] == "not_authenticated"
        status, body = _call(fixture, request, fixture.keys["other"])
        if scope == OPERATOR:
            assert status == 403, f"{where} (operator) with a tenant key answered {status}"
        elif _references_tenant(request, route):
            assert status == 404, f"{where} with another tenant's key answered {status}: {body}"
        else:
            assert 200 <= status < 300, f"{where} with another tenant's key answered {status}"
        missing_key = fixture.keys["right"] if scope == OPERATOR else fixture.missing[scope]
        status, body = _call(fixture, request, missing_key)
        assert status == 403, f"{where} without scope {scope} answered {status}: {body}"
        assert body["code"] == "missing_scope" and body["scope"] == scope
        assert scope in body["message"]
        right = OPERATOR_KEY if scope == OPERATOR else fixture.keys["right"]
        status, body = _call(fixture, request, right)
        assert 200 <= status < 300, f"{where} with the right key answered {status}: {body}"
        checked += 1
    assert checked >= 20, f"only {checked} routes checked: is the route table read right?"


def test_public_pages_need_no_key(fixture: Fixture) -> None:
    with httpx.Client(base_url=fixture.server.url, timeout=30) as client:
        for path in [*PUBLIC, *PUBLIC_PAGES]:
            assert client.get(path).status_code == 200, path
