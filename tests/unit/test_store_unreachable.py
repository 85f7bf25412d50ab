"""A store out of reach is told apart from a request's own failure: the first answers 503
``store_unavailable`` (REST and GraphQL), the second stays a 500 (a bug)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from graphql import GraphQLError
from sqlalchemy import text

from executor.api.graphql.route import format_error
from executor.store.db import Database, unreachable


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error_of(db: Database, sql: str) -> Exception:
    with pytest.raises(Exception) as raised, db.session() as session:
        session.execute(text(sql))
    return raised.value


def test_a_refused_connection_is_the_store_out_of_reach() -> None:
    db = Database(f"postgresql+psycopg://executor:executor@127.0.0.1:{_refused_port()}/none")
    try:
        assert unreachable(_error_of(db, "SELECT 1"))
    finally:
        db.dispose()


def test_a_bad_statement_on_a_working_store_is_not(tmp_path: Path) -> None:
    # sqlite3 raises OperationalError for both: only the connection tells them apart.
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        error = _error_of(db, "SELECT * FROM no_such_table")
        assert type(error).__name__ == "OperationalError"
        assert not unreachable(error)
    finally:
        db.dispose()


def test_a_resolver_meeting_the_store_down_answers_store_unavailable() -> None:
    db = Database(f"postgresql+psycopg://executor:executor@127.0.0.1:{_refused_port()}/none")
    try:
        error = _error_of(db, "SELECT 1")
    finally:
        db.dispose()
    shown = format_error(GraphQLError("x", original_error=error))
    assert shown["message"] == (
        "The database is out of reach: nothing was stored; retry after 'retry_after_s' seconds."
    )
    assert shown["extensions"] == {"code": "store_unavailable", "status": 503, "retry_after_s": 5}
