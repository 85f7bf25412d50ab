"""The 0024 migration (a failed run's error summary) over rows made before it: run on
SQLite by tests/unit/test_run_errors.py and on PostgreSQL by
tests/integration/test_postgres.py."""

from __future__ import annotations

from executor.store.db import Database
from executor.store.run_errors import MAX_LOCATION_CHARS, MAX_TYPE_CHARS
from executor.store.tables import Invocation
from tests.output_migration import ROWS_AT_0013
from tests.tenant_migration import migrate_to


def check_old_runs_have_no_error_summary(database: Database) -> None:
    """A run stored at 0023 reads as having no summary after 0024; a summary of the
    columns' full sizes is stored whole."""
    migrate_to(database, "0023")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0013:
            connection.exec_driver_sql(statement)
    database.migrate()
    longest = ("E" * MAX_TYPE_CHARS, "m" * 5000, "l" * MAX_LOCATION_CHARS)
    with database.session() as session:
        old = session.get(Invocation, "i1")
        assert old is not None
        assert (old.error_type, old.error_message, old.error_location) == (None, None, None)
        old.error_type, old.error_message, old.error_location = longest
    with database.session() as session:
        kept = session.get(Invocation, "i1")
        assert kept is not None
        assert (kept.error_type, kept.error_message, kept.error_location) == longest
