"""one clock for leases (issue 22): each node's clock skew against the database's

Heartbeats, lease expiries and "lost" decisions are stamped by the database's clock;
``nodes.clock_skew_s`` keeps how far the node's own clock was off at its last heartbeat
(seconds, positive: ahead), shown in ``GET /v1/nodes`` and ``plugin-executor nodes``.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("clock_skew_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("clock_skew_s")
