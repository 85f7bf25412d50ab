"""The 0016 migration (webhooks) over rows made before it, and back: run on SQLite by the
unit tests and on PostgreSQL by tests/integration/test_postgres.py."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from executor.statuses import PluginKind
from executor.store.db import MIGRATIONS_DIR, Database
from executor.store.tables import Invocation, Plugin, Webhook
from tests.output_migration import ROWS_AT_0013
from tests.tenant_migration import migrate_to


def _downgrade(database: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def check_old_plugins_are_code_and_webhooks_come_and_go(database: Database) -> None:
    """A plugin and a run written at 0014 read as a ``code`` plugin and a run without an
    HTTP status after 0016; a webhook version's receiver is stored; the downgrade removes
    it all and keeps the old rows."""
    migrate_to(database, "0014")
    with database.engine.begin() as connection:
        for statement in ROWS_AT_0013:  # the same rows are valid at 0014
            connection.exec_driver_sql(statement)
    database.migrate()
    with database.session() as session:
        plugin = session.get(Plugin, "p1")
        invocation = session.get(Invocation, "i1")
        assert plugin is not None and plugin.kind == PluginKind.CODE
        assert invocation is not None and invocation.http_status is None
        invocation.http_status = 503
        session.add(
            Webhook(
                version_id="v1",
                url="https://hooks.example/in",
                header="Bearer x",
                signing_secret="whsec_s",
                handler_types=["onSubmit"],
                event_matcher=["asset.*"],
            )
        )
    with database.session() as session:
        webhook = session.get(Webhook, "v1")
        assert webhook is not None and webhook.event_matcher == ["asset.*"]
        invocation = session.get(Invocation, "i1")
        assert invocation is not None and invocation.http_status == 503
    _downgrade(database, "0014")
    tables = inspect(database.engine)
    assert "webhooks" not in tables.get_table_names()
    assert "kind" not in {c["name"] for c in tables.get_columns("plugins")}
    assert "http_status" not in {c["name"] for c in tables.get_columns("invocations")}
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM plugins").scalars().all() == ["qa"]
