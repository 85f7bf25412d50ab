"""Fixtures of the integration tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_DSN = "host=127.0.0.1 port=5432 user=executor password=executor dbname=postgres"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on the local PostgreSQL (started by deploy/setup.sh), dropped after;
    yields its SQLAlchemy URL."""
    name = f"pe_test_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://executor:executor@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database for the test."""
    with fresh_database() as url:
        yield url
