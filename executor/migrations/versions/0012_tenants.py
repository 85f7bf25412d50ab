"""tenants, API keys, projects and the audit log (issue 8)

Existing rows move to the tenant "default", which the operator key acts on.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFAULT_TENANT = "default"
# Tables whose rows gain an owner (a plain column where the row may outlive the tenant's
# plugins: runs and their logs are kept after a plugin is deleted).
OWNED_WITHOUT_FK = {
    "invocations": ("ix_invocations_tenant_queued", ["tenant_id", "queued_at"]),
    "events": None,
    "log_records": ("ix_logs_tenant", ["tenant_id", "id"]),
}
# The unnamed UNIQUE(name) of 0001, as SQLite's batch mode and PostgreSQL name it.
SQLITE_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
OLD_UNIQUE = {"sqlite": "uq_plugins_name", "postgresql": "plugins_name_key"}


def _tenant_fk() -> sa.Column[str]:
    return sa.Column(
        "tenant_id",
        sa.String(length=64),
        sa.ForeignKey("tenants.id", name="fk_tenant", ondelete="CASCADE"),
        nullable=False,
        server_default=DEFAULT_TENANT,
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("max_plugins", sa.Integer(), nullable=True),
        sa.Column("max_versions", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=True),
    )
    op.execute(
        f"INSERT INTO tenants (id, created_at) VALUES ('{DEFAULT_TENANT}', CURRENT_TIMESTAMP)"
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), primary_key=True),
        _tenant_fk(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_sha256", sa.String(length=64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=200), primary_key=True),
        _tenant_fk(),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_projects_tenant_id", "projects", ["tenant_id"])
    # Projects with activations so far are the default tenant's.
    op.execute(
        "INSERT INTO projects (id, tenant_id, created_at) SELECT project_id, "
        f"'{DEFAULT_TENANT}', MIN(created_at) FROM activations GROUP BY project_id"
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_tenant", "audit_log", ["tenant_id", "id"])
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("plugins", naming_convention=SQLITE_CONVENTION) as batch_op:
        batch_op.add_column(_tenant_fk())
        batch_op.drop_constraint(OLD_UNIQUE.get(dialect, "uq_plugins_name"), type_="unique")
        batch_op.create_unique_constraint("uq_plugins_tenant_name", ["tenant_id", "name"])
        batch_op.create_index("ix_plugins_tenant_id", ["tenant_id"])
    for table, index in OWNED_WITHOUT_FK.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "tenant_id",
                    sa.String(length=64),
                    nullable=False,
                    server_default=DEFAULT_TENANT,
                )
            )
            if index is not None:
                batch_op.create_index(index[0], index[1])


def downgrade() -> None:
    for table, index in OWNED_WITHOUT_FK.items():
        with op.batch_alter_table(table) as batch_op:
            if index is not None:
                batch_op.drop_index(index[0])
            batch_op.drop_column("tenant_id")
    with op.batch_alter_table("plugins") as batch_op:
        batch_op.drop_index("ix_plugins_tenant_id")
        batch_op.drop_constraint("uq_plugins_tenant_name", type_="unique")
        batch_op.drop_constraint("fk_tenant", type_="foreignkey")
        batch_op.drop_column("tenant_id")
        batch_op.create_unique_constraint("uq_plugins_name", ["name"])
    op.drop_table("audit_log")
    op.drop_index("ix_projects_tenant_id", "projects")
    op.drop_table("projects")
    op.drop_index("ix_api_keys_tenant_id", "api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
