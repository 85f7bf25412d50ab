"""log query indexes (issue 5): run, plugin, level and time-window lookups; retention

Revision ID: 0005
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0010"
branch_labels = None
depends_on = None

LOG_INDEXES = {
    "ix_logs_run_id": ["run_id", "id"],
    "ix_logs_plugin": ["plugin_name", "id"],
    "ix_logs_project_plugin_type": ["project_id", "plugin_name", "log_type", "id"],
    "ix_logs_project_plugin_created": ["project_id", "plugin_name", "created_at"],
}
INVOCATION_INDEXES = {
    "ix_invocations_plugin_queued": ["plugin_name", "queued_at"],
    "ix_invocations_finished": ["finished_at"],
}


def upgrade() -> None:
    for name, columns in LOG_INDEXES.items():
        op.create_index(name, "log_records", columns)
    for name, columns in INVOCATION_INDEXES.items():
        op.create_index(name, "invocations", columns)


def downgrade() -> None:
    for name in INVOCATION_INDEXES:
        op.drop_index(name, table_name="invocations")
    for name in LOG_INDEXES:
        op.drop_index(name, table_name="log_records")
