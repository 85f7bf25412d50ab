"""Fixtures of the integration tests: a fresh PostgreSQL database per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_DSN = "host=127.0.0.1 port=5432 user=executor password=executor dbname=postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (started by deploy/setup.sh), dropped after."""
    name = f"pe_test_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://executor:executor@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
