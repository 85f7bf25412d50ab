"""The 0012 migration (tenants) over rows made before it: run on SQLite by the unit tests
and on PostgreSQL by tests/integration/test_postgres.py."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from executor.store.db import MIGRATIONS_DIR, Database
from executor.store.tables import Activation, Plugin, Project, Tenant


def migrate_to(database: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def check_old_rows_move_to_the_default_tenant(database: Database) -> None:
    """Rows written at 0011 belong to the tenant 'default' after 0012; plugin names are
    unique per tenant from then on."""
    migrate_to(database, "0011")
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO plugins (id, name, created_at) VALUES ('p1', 'qa', '2024-01-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO activations (id, plugin_id, project_id, max_retries, created_at) "
            "VALUES ('a1', 'p1', 'proj', 0, '2024-01-01')"
        )
    database.migrate()
    with database.session() as session:
        plugin = session.get(Plugin, "p1")
        project = session.get(Project, "proj")
        assert plugin is not None and plugin.tenant_id == "default"
        assert project is not None and project.tenant_id == "default"
        # SQLite rebuilds the plugins table: rows referring to it must survive that.
        assert session.get(Activation, "a1") is not None
        session.add(Tenant(id="acme"))
        session.flush()
        session.add(Plugin(name="qa", tenant_id="acme"))
