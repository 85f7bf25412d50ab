"""runs outlive their plugin (issue 13)

Deleting a plugin deleted its invocations too (ON DELETE CASCADE from plugins and
plugin_versions), and with them their gateway calls. Invocations now keep the plugin's and
the version's ids as plain columns, like ``tenant_id`` since 0012, and record when their
plugin was deleted (``plugin_deleted_at``); retention purges them like any other run.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# 0001 left these foreign keys unnamed; PostgreSQL named them "<table>_<column>_fkey", and
# this convention gives SQLite's batch mode the same names.
NAMING_CONVENTION = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}
DROPPED = {"plugin_id": "plugins", "version_id": "plugin_versions"}


def upgrade() -> None:
    with op.batch_alter_table("invocations", naming_convention=NAMING_CONVENTION) as batch_op:
        for column in DROPPED:
            batch_op.drop_constraint(f"invocations_{column}_fkey", type_="foreignkey")
        batch_op.add_column(sa.Column("plugin_deleted_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    # The foreign keys cannot come back while runs of deleted plugins remain.
    op.execute(
        "DELETE FROM invocations WHERE plugin_id NOT IN (SELECT id FROM plugins) "
        "OR version_id NOT IN (SELECT id FROM plugin_versions)"
    )
    with op.batch_alter_table("invocations") as batch_op:
        batch_op.drop_column("plugin_deleted_at")
        for column, table in DROPPED.items():
            batch_op.create_foreign_key(
                f"invocations_{column}_fkey", table, [column], ["id"], ondelete="CASCADE"
            )
