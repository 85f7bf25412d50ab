"""warm-aware placement (issue 15): each node publishes its ready warm containers

``nodes.warm`` maps a plugin version id to how many warm containers of it the node holds
ready; a node without one defers that version's new runs to a node with one for
``EXECUTOR_PLACEMENT_GRACE_S``.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("warm", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("warm")
