"""The 0016 migration (webhooks) on SQLite; tests/integration/test_postgres.py runs it on
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from executor.store.db import Database
from tests.webhook_migration import check_old_plugins_are_code_and_webhooks_come_and_go


def test_webhook_migration_keeps_old_rows_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        check_old_plugins_are_code_and_webhooks_come_and_go(database)
    finally:
        database.dispose()
