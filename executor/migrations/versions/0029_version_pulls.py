"""the nodes that hold a pushed version's image, before it becomes ACTIVE

``version_pulls``: with a registry, a build waits after its push until every live node's
pre-puller holds the image (or a bound passes), so a new version's first run on a node
starts it instead of pulling it (``executor.store.distribution``).

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_pulls",
        sa.Column(
            "version_id",
            sa.String(36),
            sa.ForeignKey("plugin_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("node_id", sa.String(200), primary_key=True),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("version_pulls")
