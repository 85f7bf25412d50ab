"""The 0013 migration (runs outlive their plugin) over rows made before it: run on SQLite
by tests/unit/test_runs_migration.py and on PostgreSQL by tests/integration/test_postgres.py."""

from __future__ import annotations

from sqlalchemy import func, select

from executor.store import plugins as plugin_store
from executor.store import queries as query_store
from executor.store import queue as queue_store
from executor.store.db import Database
from executor.store.tables import (
    Activation,
    GatewayCall,
    Invocation,
    InvocationToken,
    LogRecord,
    Plugin,
    PluginVersion,
)
from tests.tenant_migration import migrate_to

T = "'2024-01-01 00:00:00'"
ROWS_AT_0012 = [
    f"INSERT INTO plugins (id, name, created_at) VALUES ('p1', 'qa', {T})",
    "INSERT INTO plugin_versions (id, plugin_id, number, status, handlers, requirements, "
    f"source_sha256, source, build_log, created_at) VALUES ('v1', 'p1', 1, 'ACTIVE', '[]', '', "
    f"'0', '', '', {T})",
    "INSERT INTO activations (id, plugin_id, project_id, max_retries, created_at) "
    f"VALUES ('a1', 'p1', 'proj', 0, {T})",
    "INSERT INTO events (id, type, project_id, received_at) "
    f"VALUES ('e1', 'onSubmit', 'proj', {T})",
    *(
        "INSERT INTO invocations (id, event_id, plugin_id, version_id, plugin_name, "
        "version_number, project_id, event_type, status, attempt, queued_at, cold_start, "
        f"log_bytes, truncated) VALUES ('{run}', 'e1', 'p1', 'v1', 'qa', 1, 'proj', 'onSubmit', "
        f"'{status}', 1, {T}, true, 10, false)"
        for run, status in (("done", "succeeded"), ("waiting", "queued"))
    ),
    "INSERT INTO gateway_calls (invocation_id, created_at, method, path, status, request_bytes, "
    f"response_bytes, duration_ms) VALUES ('done', {T}, 'GET', '/api', 200, 0, 2, 1)",
    "INSERT INTO invocation_tokens (token_sha256, invocation_id, project_id, created_at, "
    f"expires_at, calls) VALUES ('h', 'done', 'proj', {T}, {T}, 1)",
    "INSERT INTO log_records (created_at, plugin_name, project_id, run_id, log_type, content, "
    f"stream, seq) VALUES ({T}, 'qa', 'proj', 'done', 'INFO', 'hello', 'stdout', 1)",
]


def _count(database: Database, table: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def check_runs_outlive_their_plugin(database: Database) -> None:
    """Rows written at 0012 all survive 0013 (SQLite rebuilds the invocations table); then
    deleting the plugin keeps its runs and what hangs off them, and frees the name."""
    migrate_to(database, "0012")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0012:
            connection.exec_driver_sql(statement)
    database.migrate()
    kept = (Plugin, PluginVersion, Activation, Invocation, GatewayCall, InvocationToken)
    assert [_count(database, table) for table in (*kept, LogRecord)] == [1, 1, 1, 2, 1, 1, 1]

    with database.session() as session:
        plugin = plugin_store.get_plugin(session, "default", "qa")  # with its versions
        queue_store.plugin_deleted(session, plugin)
        plugin_store.delete_plugin(session, plugin)
    with database.session() as session:
        session.add(Plugin(name="qa"))  # the name is free again
    assert [_count(database, table) for table in kept] == [1, 0, 0, 2, 1, 1]
    with database.session() as session:
        done, waiting = (
            query_store.get_invocation(session, run, calls=True) for run in ("done", "waiting")
        )
        assert (done.status, waiting.status) == ("succeeded", "canceled")
        assert done.plugin_deleted_at is not None and waiting.plugin_deleted_at is not None
        assert waiting.error == "canceled: the plugin 'qa' was deleted before this run started"
        assert [call.path for call in done.gateway_calls] == ["/api"]
