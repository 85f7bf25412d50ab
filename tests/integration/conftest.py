"""Fixtures of the integration tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from executor.store.db import Database

ADMIN_DSN = "host=127.0.0.1 port=5432 user=executor password=executor dbname=postgres"
URL = "postgresql+psycopg://executor:executor@127.0.0.1:5432/{name}"
# This test process's migrated database, copied by CREATE DATABASE ... TEMPLATE: migrating
# a new one through every revision cost more than the copy (``template_database``).
_template: list[str] = []


def _admin(statement: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(statement)


def _migrated_template() -> str:
    """The template's name; made (and migrated by ``Database.migrate``) on first use."""
    if not _template:
        name = f"pe_test_schema_{secrets.token_hex(4)}"
        _admin(f"CREATE DATABASE {name}")
        _template.append(name)
        database = Database(URL.format(name=name))
        try:
            database.migrate()
        finally:
            database.dispose()  # a template with a connection open cannot be copied
    return _template[0]


@contextlib.contextmanager
def fresh_database(*, migrated: bool = True) -> Iterator[str]:
    """A new database on the local PostgreSQL (started by deploy/setup.sh), dropped after;
    yields its SQLAlchemy URL. ``migrated``: a copy of a database at the newest revision
    (``migrate()`` finds nothing to do); otherwise empty, for the tests of migrations."""
    name = f"pe_test_{secrets.token_hex(4)}"
    template = f" TEMPLATE {_migrated_template()}" if migrated else ""
    _admin(f"CREATE DATABASE {name}{template}")
    try:
        yield URL.format(name=name)
    finally:
        _admin(f"DROP DATABASE {name} WITH (FORCE)")


def drop_template() -> None:
    """Drop this process's template database, if one was made (``fresh_database``)."""
    while _template:
        _admin(f"DROP DATABASE {_template.pop()} WITH (FORCE)")


@pytest.fixture(scope="session", autouse=True)
def template_database() -> Iterator[None]:
    """Drops this test process's template database at its end."""
    yield
    drop_template()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database for the test, at the newest revision."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    """The store on a fresh database (``postgres_url``), disposed of after the test."""
    database = Database(postgres_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh, empty database: for tests of the migrations themselves."""
    with fresh_database(migrated=False) as url:
        yield url
