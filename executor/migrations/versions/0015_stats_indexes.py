"""stats indexes (issue 17): a tenant's runs by finish time, gateway calls by time

``GET /v1/stats`` reads a tenant's runs that finished in a range and the gateway calls made
in it; without these it would read every run and every call that retention keeps.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_invocations_tenant_finished": ("invocations", ["tenant_id", "finished_at"]),
    "ix_gateway_calls_created": ("gateway_calls", ["created_at"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
