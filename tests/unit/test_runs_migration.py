"""Migration 0013 on SQLite (no Docker): runs outlive their plugin, and the table rebuild
SQLite needs to drop a foreign key loses no row that refers to the rebuilt table."""

from __future__ import annotations

from pathlib import Path

from executor.store.db import Database
from tests.runs_migration import check_runs_outlive_their_plugin


def test_runs_outlive_their_plugin_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        check_runs_outlive_their_plugin(database)
    finally:
        database.dispose()
