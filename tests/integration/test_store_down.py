"""The store out of reach: the API answers 503 ``store_unavailable`` with ``Retry-After``,
never a 500 and never a 2xx for what it did not store; once the store is back, it works.

The executor's own PostgreSQL database is made to refuse connections (``ALLOW_CONNECTIONS
false``) and its sessions are ended, as a PostgreSQL restart or a failover would: the
shared PostgreSQL server itself keeps running for every other test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import RunningServer, make_settings, start_server, stop_server
from tests.integration.conftest import ADMIN_DSN

pytestmark = pytest.mark.docker

MESSAGE = "The database is out of reach: nothing was stored; retry after 'retry_after_s' seconds."
EVENT = {"id": "while-down", "type": "custom", "project_id": "p-down", "payload": {}}


def _database(server: RunningServer) -> str:
    name = make_url(server.settings.resolved_database_url).database
    assert name is not None
    return name


def _connections(database: str, *, allowed: bool) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS {str(allowed).lower()}")
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


@pytest.fixture
def down(
    postgres_url: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    runtime_image: str,
) -> Iterator[RunningServer]:
    """An executor on its own PostgreSQL database, which refuses connections until the
    test lets them in again (or its end does); stopped before the database is dropped."""
    settings = make_settings(tmp_path, database_url=postgres_url, dispatch=False)
    started = start_server(settings, docker_client)
    database = _database(started[0])
    _connections(database, allowed=False)
    try:
        yield started[0]
    finally:
        _connections(database, allowed=True)
        stop_server(*started)


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert (body["code"], body["message"], body["retry_after_s"]) == (
        "store_unavailable",
        MESSAGE,
        5,
    )
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_requests_answer_503_while_the_store_is_down_and_work_once_it_is_back(
    down: RunningServer,
) -> None:
    api = down.api
    reads: list[Any] = [api.get("/v1/plugins"), api.get("/v1/nodes"), api.get("/v1/invocations")]
    for response in reads:
        _refused(response)
    _refused(api.post("/v1/events", json=EVENT))
    _refused(api.post("/v1/tenants", json={"name": "made-while-down"}))
    # The Kili API's key is checked in the store first: the same 503 (a resolver meeting
    # the store down answers one in GraphQL's shape: tests/unit/test_graphql_guard.py).
    _refused(api.post("/graphql", json={"query": "{ listPlugins { id } }"}))

    _connections(_database(down), allowed=True)
    deadline = time.monotonic() + 60
    # The first request after may still meet a connection ended while the store was down:
    # that one answers 503 too, and the pool replaces it.
    while (listed := api.get("/v1/plugins")).status_code == 503:
        assert time.monotonic() < deadline, listed.text
        time.sleep(0.2)
    assert (listed.status_code, listed.json()) == (200, [])
    assert api.get("/v1/nodes").status_code == 200
    # Nothing refused was stored meanwhile.
    assert [t["name"] for t in api.get("/v1/tenants").json()] == ["default"]
    assert api.get("/v1/invocations").json() == []
    assert api.put("/v1/tenants/default/projects/p-down").status_code == 200
    accepted = api.post("/v1/events", json=EVENT)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"event_id": "while-down", "invocations": []}
