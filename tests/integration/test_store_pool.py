"""A pooled PostgreSQL connection is checked before use without a round trip: pinged only
when the server sent it something while it sat idle (it ended the session), or after a
long idle."""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from executor.store import db as db_module
from executor.store.db import Database
from tests.integration.conftest import ADMIN_DSN


@pytest.fixture
def pings(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, list[int]]]:
    """A store with a pool of one, whose connections count as idle once returned; the list
    gets a 1 for each ping its pool sends."""
    monkeypatch.setattr(db_module, "IDLE_CHECK_S", 0.0)
    database = Database(postgres_url, pool_size=1)
    sent: list[int] = []
    ping = database.engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counted)
    yield database, sent
    database.dispose()


def backend(database: Database) -> tuple[int, Any]:
    """The server process of the pooled connection a session uses, and its socket's owner."""
    with database.session() as session:
        pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        return pid, session.connection().connection.dbapi_connection


def test_a_quiet_idle_connection_is_used_without_a_ping(pings: tuple[Database, list[int]]) -> None:
    database, sent = pings
    first, _ = backend(database)
    assert [backend(database)[0] for _ in range(3)] == [first] * 3
    assert sent == []


def test_a_long_idle_connection_is_pinged(
    pings: tuple[Database, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, sent = pings
    first, _ = backend(database)
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)
    assert backend(database)[0] == first
    assert sent == [1]


def test_a_connection_the_server_ended_while_idle_is_replaced_before_use(
    pings: tuple[Database, list[int]],
) -> None:
    database, sent = pings
    first, connection = backend(database)
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()
    assert ended == (True,)
    # The server's last word (FATAL, then the close) reaches the idle socket.
    readable, _, _ = select.select([connection.fileno()], [], [], 30)
    assert readable
    second, _ = backend(database)  # no error: the pool replaced the connection
    assert second != first
    assert sent == [1]
