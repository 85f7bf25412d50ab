"""The 0025 migration (plugin name keys) over rows made before it, and back: run on SQLite by
the unit tests and on PostgreSQL by tests/integration/test_postgres.py."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import inspect, select

from executor.errors import NameTaken
from executor.identifiers import plugin_name_key
from executor.statuses import RuntimeFlavor
from executor.store import plugins as plugin_store
from executor.store.db import Database
from executor.store.tables import Plugin
from tests.tenant_migration import migrate_to
from tests.webhook_migration import _downgrade

# Names the old rule allowed: two of the default tenant differ only in case; another
# tenant's 'qa_bot' is its own.
ROWS_AT_0023 = [
    "INSERT INTO tenants (id, created_at) VALUES ('t2', '2024-01-01')",
    "INSERT INTO plugins (id, tenant_id, name, created_at, kind) "
    "VALUES ('p1', 'default', 'qa_bot', '2024-01-01', 'code')",
    "INSERT INTO plugins (id, tenant_id, name, created_at, kind) "
    "VALUES ('p2', 'default', 'QA_bot', '2024-02-01', 'code')",
    "INSERT INTO plugins (id, tenant_id, name, created_at, kind) "
    "VALUES ('p3', 'default', 'other', '2024-01-01', 'code')",
    "INSERT INTO plugins (id, tenant_id, name, created_at, kind) "
    "VALUES ('p4', 't2', 'qa_bot', '2024-01-01', 'code')",
]


def add_plugin(database: Database, tenant: str, name: str) -> None:
    with database.session() as session:
        plugin_store.add_version(
            session,
            tenant,
            name,
            max_plugins=100,
            max_versions=100,
            handlers=["onSubmit"],
            requirements="",
            source_sha256="x",
            source=b"",
            runtime=RuntimeFlavor.MINIMAL,
        )


def check_old_names_get_keys_and_case_twins_keep_working(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """After 0025 every old plugin has its key; of two names equal but for case, the older
    holds the key and the newer one a key of its own (with a warning), both found by their
    exact names; a new name equal to them but for case is refused naming the older."""
    migrate_to(database, "0023")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0023:
            connection.exec_driver_sql(statement)
    with caplog.at_level(logging.WARNING, logger="alembic.runtime.migration"):
        database.migrate()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "tenant 'default': plugin 'QA_bot' has the name of 'qa_bot' but for case; both keep "
        "their exact names, and no new plugin can take either"
    ]
    with database.session() as session:
        rows = session.execute(select(Plugin.id, Plugin.name_key))
        keys = {row.id: row.name_key for row in rows}
        assert keys["p1"] == keys["p4"] == plugin_name_key("qa_bot")
        assert keys["p3"] == plugin_name_key("other")
        assert keys["p2"] not in (keys["p1"], keys["p3"])
        assert plugin_store.get_plugin(session, "default", "QA_bot").id == "p2"
        assert plugin_store.get_plugin(session, "default", "qa_bot").id == "p1"
    with pytest.raises(NameTaken) as taken:
        add_plugin(database, "default", "Qa_Bot")
    assert taken.value.existing == "qa_bot"
    add_plugin(database, "t2", "Other")  # another tenant's names are its own
    _downgrade(database, "0023")
    columns = {c["name"] for c in inspect(database.engine).get_columns("plugins")}
    assert "name_key" not in columns
    with database.engine.connect() as connection:
        names = connection.exec_driver_sql("SELECT name FROM plugins").scalars().all()
    assert sorted(names) == ["Other", "QA_bot", "other", "qa_bot", "qa_bot"]
