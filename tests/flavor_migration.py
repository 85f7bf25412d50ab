"""The 0015 migration (the runtime flavor of a version) over rows made before it: run on
SQLite by the unit tests and on PostgreSQL by tests/integration/test_postgres.py."""

from __future__ import annotations

from executor.store.db import Database
from executor.store.tables import PluginVersion
from tests.tenant_migration import migrate_to

ROWS_AT_0014 = [
    "INSERT INTO plugins (id, name, created_at) VALUES ('p1', 'qa', '2024-01-01')",
    "INSERT INTO plugin_versions (id, plugin_id, number, status, handlers, requirements, "
    "source_sha256, source, build_log, created_at) VALUES ('v1', 'p1', 1, 'ACTIVE', '[]', '', "
    "'x', '', '', '2024-01-01')",
]


def check_old_versions_ran_on_the_minimal_flavor(database: Database) -> None:
    """A version built before flavors (FROM the runtime base alone) reads as "minimal"."""
    migrate_to(database, "0014")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0014:
            connection.exec_driver_sql(statement)
    database.migrate()
    with database.session() as session:
        version = session.get(PluginVersion, "v1")
        assert version is not None and version.runtime == "minimal"
        version.runtime = "datascience"
    with database.session() as session:
        version = session.get(PluginVersion, "v1")
        assert version is not None and version.runtime == "datascience"
