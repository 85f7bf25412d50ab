"""Listing plugins costs the same few statements however many plugins there are: the REST
list (GET /v1/plugins) and the GraphQL one (service.reads) read every plugin's versions
and projects in one statement each, never one per plugin. Counted on SQLite with
SQLAlchemy's ``before_cursor_execute``, through the real app, without a Docker Engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from executor.api.app import create_app
from executor.engine.fake import FakeEngine
from executor.service import reads
from executor.service.wiring import ExecutorService
from executor.settings import Settings
from executor.store.db import Database
from executor.store.tables import DEFAULT_TENANT, Activation, Plugin, PluginVersion
from executor.tenancy.access import operator_caller

OPERATOR_KEY = "pe_op_list-queries-test-0123456789"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ExecutorService]:
    executor = ExecutorService(
        Settings(data_dir=tmp_path, operator_key=OPERATOR_KEY), engine=FakeEngine()
    )
    executor.db.migrate()
    yield executor
    executor.stop()  # never started: stops what construction made (the store's pool)


def add_plugins(db: Database, count: int, first: int = 0) -> None:
    """``count`` plugins of the default tenant numbered from ``first``, each with two
    versions and two projects."""
    with db.session() as session:
        for n in range(first, first + count):
            plugin = Plugin(name=f"plugin_{n:02}", tenant_id=DEFAULT_TENANT)
            session.add(plugin)
            session.flush()
            for number in (1, 2):
                session.add(
                    PluginVersion(plugin_id=plugin.id, number=number, source_sha256="x", source=b"")
                )
            for project in ("p1", "p2"):
                session.add(Activation(plugin_id=plugin.id, project_id=f"{project}-{n}"))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


async def get(service: ExecutorService, path: str) -> httpx.Response:
    """GET ``path`` of the app in process (its lifespan not run: nothing is started)."""
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://executor.test") as client:
        return await client.get(path, headers={"Authorization": f"Bearer {OPERATOR_KEY}"})


def rest_list(service: ExecutorService) -> tuple[int, list[dict[str, Any]]]:
    with statements(service.db) as seen:
        answer = asyncio.run(get(service, "/v1/plugins"))
    assert answer.status_code == 200, answer.text
    return len(seen), answer.json()


def graphql_list(service: ExecutorService) -> tuple[int, list[reads.PluginOverview]]:
    with statements(service.db) as seen:
        overviews = reads.plugin_overviews(service.db, operator_caller(DEFAULT_TENANT))
    return len(seen), overviews


def test_the_rest_plugin_list_does_not_query_per_plugin(service: ExecutorService) -> None:
    add_plugins(service.db, 1)
    rest_list(service)  # the key's first request reads its tenant once (cached after)
    one, listed = rest_list(service)
    assert [(p["name"], sorted(p["projects"])) for p in listed] == [("plugin_00", ["p1-0", "p2-0"])]

    add_plugins(service.db, 19, first=1)
    twenty, listed = rest_list(service)
    assert len(listed) == 20
    assert sorted(listed[19]["projects"]) == ["p1-19", "p2-19"]
    assert twenty == one


def test_the_graphql_plugin_list_does_not_query_per_plugin(service: ExecutorService) -> None:
    add_plugins(service.db, 1)
    one, overviews = graphql_list(service)
    assert [(o.name, sorted(o.project_ids)) for o in overviews] == [("plugin_00", ["p1-0", "p2-0"])]

    add_plugins(service.db, 19, first=1)
    twenty, overviews = graphql_list(service)
    assert [len(o.project_ids) for o in overviews] == [2] * 20
    assert twenty == one
