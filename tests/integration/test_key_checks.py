"""The key and scope checks of the event route's fast path are every other route's: the same
bad key answers the same error on POST /v1/events and on GET /v1/projects/{id}/plugins, and
each request is counted once against its key's rate, whichever path it takes.

On a real executor (HTTP on loopback, SQLite) over the ``FakeEngine``: no Docker Engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from executor.api.routes import events as event_routes
from executor.errors import MissingScope
from executor.statuses import Scope
from executor.tenancy.ratelimit import KeyLimiter
from tests.fake_server import FakeServer, fake_server

PROJECT, OTHER_PROJECT = "p-acme", "p-other"
EVENT = {"type": "onSubmit", "project_id": PROJECT, "asset_id": "a1", "label": {}}
UNKNOWN_KEY = "pe_unknown-key-0123456789abcdef"
REQUESTS_PER_MINUTE = 3


class CountingLimiter(KeyLimiter):
    """The executor's in-memory limiter on a clock that stands still (no token comes back
    while a test runs), noting every request it is asked to count."""

    def __init__(self, requests_per_minute: int) -> None:
        super().__init__(requests_per_minute, 10**9, clock=lambda: 0.0)
        self.counted: list[str] = []

    def request(self, key_id: str, tokens: int = 1) -> None:
        self.counted.append(key_id)
        super().request(key_id, tokens)


def _ok(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _key(server: FakeServer, tenant: str, scopes: list[str]) -> dict[str, Any]:
    body = {"name": "key-checks", "scopes": scopes}
    return dict(_ok(server.api.post(f"/v1/tenants/{tenant}/keys", json=body), 201))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    """Tenants acme (project p-acme) and other (project p-other); each test makes its keys."""
    with fake_server(tmp_path_factory.mktemp("key-checks")) as started:
        for tenant, project in (("acme", PROJECT), ("other", OTHER_PROJECT)):
            _ok(started.api.post("/v1/tenants", json={"name": tenant}), 201)
            _ok(started.api.put(f"/v1/tenants/{tenant}/projects/{project}"), 200)
        yield started


@pytest.fixture
def server(served: FakeServer) -> FakeServer:
    """The served executor with a fresh limiter that counts."""
    served.service.limiter = CountingLimiter(1000)
    return served


def _counted(server: FakeServer) -> list[str]:
    """The key ids the limiter counted requests of, in order."""
    limiter = server.service.limiter
    assert isinstance(limiter, CountingLimiter)
    return limiter.counted


def _post_event(server: FakeServer, key: str, **fields: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **fields.pop("headers", {})}
    return httpx.post(f"{server.url}/v1/events", headers=headers, **fields)


def _event(server: FakeServer, key: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return _post_event(server, key, json=EVENT, headers=headers or {})


def _project_plugins(
    server: FakeServer, key: str, project: str = PROJECT, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.get(
        f"{server.url}/v1/projects/{project}/plugins",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
    )


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    return error


def test_an_unknown_key_is_refused_alike(server: FakeServer) -> None:
    on_event = _error(_event(server, UNKNOWN_KEY), 401)
    elsewhere = _error(_project_plugins(server, UNKNOWN_KEY), 401)
    assert on_event["code"] == elsewhere["code"] == "not_authenticated"
    assert on_event["message"] == elsewhere["message"]
    assert _counted(server) == []


def test_a_revoked_key_is_refused_alike(server: FakeServer) -> None:
    key = _key(server, "acme", [Scope.EVENTS_WRITE, Scope.PLUGINS_READ])
    _ok(_event(server, key["key"]), 202)  # accepted, so remembered by the authenticator
    _ok(_project_plugins(server, key["key"]), 200)
    assert server.api.delete(f"/v1/tenants/acme/keys/{key['id']}").status_code == 204
    on_event = _error(_event(server, key["key"]), 401)
    elsewhere = _error(_project_plugins(server, key["key"]), 401)
    assert on_event["code"] == elsewhere["code"] == "not_authenticated"
    assert on_event["message"] == elsewhere["message"]


def test_a_key_without_the_scope_is_refused_alike(server: FakeServer) -> None:
    reader = _key(server, "acme", [Scope.PLUGINS_READ])
    poster = _key(server, "acme", [Scope.EVENTS_WRITE])
    _ok(_project_plugins(server, reader["key"]), 200)  # each key known to the authenticator
    _ok(_event(server, poster["key"]), 202)
    on_event = _error(_event(server, reader["key"]), 403)
    elsewhere = _error(_project_plugins(server, poster["key"]), 403)
    # Refused for its scope, each request still counted once against its key.
    assert _counted(server) == [reader["id"], poster["id"], reader["id"], poster["id"]]
    assert on_event["code"] == elsewhere["code"] == "missing_scope"
    assert on_event["message"] == MissingScope(Scope.EVENTS_WRITE).message
    assert elsewhere["message"] == MissingScope(Scope.PLUGINS_READ).message


def test_a_key_naming_another_tenant_is_refused_alike(server: FakeServer) -> None:
    key = _key(server, "acme", [Scope.EVENTS_WRITE, Scope.PLUGINS_READ])["key"]
    other = {"X-Tenant": "other"}
    on_event = _error(_event(server, key, other), 403)
    elsewhere = _error(_project_plugins(server, key, headers=other), 403)
    assert on_event["code"] == elsewhere["code"] == "missing_scope"
    assert on_event["message"] == elsewhere["message"]


def test_a_project_of_another_tenant_is_not_found_alike(server: FakeServer) -> None:
    key = _key(server, "acme", [Scope.EVENTS_WRITE, Scope.PLUGINS_READ])["key"]
    _ok(_event(server, key), 202)
    on_event = _error(_post_event(server, key, json={**EVENT, "project_id": OTHER_PROJECT}), 404)
    elsewhere = _error(_project_plugins(server, key, OTHER_PROJECT), 404)
    assert on_event["code"] == elsewhere["code"] == "not_found"
    assert f"no project {OTHER_PROJECT!r} for tenant 'acme'" in on_event["message"]
    assert f"no project {OTHER_PROJECT!r} for tenant 'acme'" in elsewhere["message"]


def test_a_key_over_its_rate_is_refused_alike(server: FakeServer) -> None:
    limiter = server.service.limiter = CountingLimiter(REQUESTS_PER_MINUTE)
    key = _key(server, "acme", [Scope.EVENTS_WRITE, Scope.PLUGINS_READ])
    for _ in range(REQUESTS_PER_MINUTE):
        _ok(_event(server, key["key"]), 202)
    on_event = _event(server, key["key"])
    elsewhere = _project_plugins(server, key["key"])
    assert _error(on_event, 429) == _error(elsewhere, 429)
    assert _error(on_event, 429)["code"] == "rate_limited"
    assert on_event.headers["Retry-After"] == elsewhere.headers["Retry-After"]
    assert limiter.counted == [key["id"]] * (REQUESTS_PER_MINUTE + 2)


@pytest.fixture
def fast_posts(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Notes each event the fast path hands to the route (FastAPI's own path calls the
    route it registered, not the module's name)."""
    taken: list[int] = []
    route: Callable[..., Awaitable[Any]] = event_routes.post_event

    async def noted(*args: Any) -> Any:
        taken.append(1)
        return await route(*args)

    monkeypatch.setattr(event_routes, "post_event", noted)
    return taken


# (what is posted, its status and code, how many times it counts against the key's rate):
# the body scan and FastAPI's JSON parse refuse before the key is looked at, as they did
# before the fast path shared the key decision.
JSON_TYPE = {"Content-Type": "application/json"}
POSTS: list[tuple[str, dict[str, Any], int, str | None, int]] = [
    ("a valid event", {"json": EVENT}, 202, None, 1),
    ("a body that is not a valid event", {"json": {"type": "onSubmit"}}, 422, "invalid_request", 1),
    (
        "a body that is not JSON",
        {"content": b"{not", "headers": JSON_TYPE},
        422,
        "invalid_request",
        0,
    ),
    (
        "a body nested too deep",
        {"content": b'{"payload":' * 300 + b"1" + b"}" * 300, "headers": JSON_TYPE},
        422,
        "event_too_deep",
        0,
    ),
]


@pytest.mark.parametrize(
    ("post", "fields", "status", "code", "counted"), POSTS, ids=[p[0] for p in POSTS]
)
def test_each_event_post_counts_at_most_once_against_the_key(
    server: FakeServer,
    fast_posts: list[int],
    post: str,
    fields: dict[str, Any],
    status: int,
    code: str | None,
    counted: int,
) -> None:
    key = _key(server, "acme", [Scope.EVENTS_WRITE])
    _ok(_event(server, key["key"]), 202)  # a key not remembered yet: verified, counted once
    assert _counted(server) == [key["id"]]
    assert fast_posts == [1]  # on the fast path too, now that it shares the key decision
    response = _post_event(server, key["key"], **fields)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert _counted(server) == [key["id"]] * (1 + counted), post
    # A valid event takes the fast path; anything else FastAPI's.
    assert fast_posts == [1] * (2 if status == 202 else 1)
