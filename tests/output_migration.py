"""The 0014 migration (output read back after a restart, records in parts) over rows made
before it: run on SQLite by the unit tests and on PostgreSQL by
tests/integration/test_postgres.py."""

from __future__ import annotations

from executor.store.db import Database
from executor.store.tables import Invocation, LogRecord
from tests.tenant_migration import migrate_to

ROWS_AT_0013 = [
    "INSERT INTO plugins (id, name, created_at) VALUES ('p1', 'qa', '2024-01-01')",
    "INSERT INTO plugin_versions (id, plugin_id, number, status, handlers, requirements, "
    "source_sha256, source, build_log, created_at) VALUES ('v1', 'p1', 1, 'ACTIVE', '[]', '', "
    "'x', '', '', '2024-01-01')",
    "INSERT INTO events (id, type, project_id, received_at) "
    "VALUES ('e1', 'onSubmit', 'proj', '2024-01-01')",
    "INSERT INTO invocations (id, event_id, plugin_id, version_id, plugin_name, version_number, "
    "project_id, event_type, status, attempt, queued_at, cold_start, log_bytes, truncated) "
    "VALUES ('i1', 'e1', 'p1', 'v1', 'qa', 1, 'proj', 'onSubmit', 'running', 1, '2024-01-01', "
    "true, 0, false)",
    "INSERT INTO log_records (created_at, plugin_name, project_id, run_id, log_type, content, "
    "stream, seq) VALUES ('2024-01-01', 'qa', 'proj', 'i1', 'INFO', 'old line', 'stdout', 1)",
]


def check_old_rows_gain_the_output_columns(database: Database) -> None:
    """A run and a record written at 0013 read as "nothing read back yet" and "not a part"
    after 0014; new values are stored."""
    migrate_to(database, "0013")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0013:
            connection.exec_driver_sql(statement)
    database.migrate()
    with database.session() as session:
        invocation = session.get(Invocation, "i1")
        assert invocation is not None
        assert (invocation.stdout_read_bytes, invocation.stderr_read_bytes) == (0, 0)
        invocation.stdout_read_bytes = 2**40  # a BIGINT
        (record,) = session.query(LogRecord).all()
        assert (record.content, record.continues) == ("old line", None)
        record.continues = 1
    with database.session() as session:
        invocation = session.get(Invocation, "i1")
        assert invocation is not None and invocation.stdout_read_bytes == 2**40
        assert session.query(LogRecord).one().continues == 1
