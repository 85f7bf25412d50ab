"""runtime flavors (issue 16): a version records the flavor its image builds FROM

Versions from before flavors were built FROM the runtime base image alone: "minimal".

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plugin_versions") as batch:
        batch.add_column(
            sa.Column("runtime", sa.String(32), nullable=False, server_default="minimal")
        )


def downgrade() -> None:
    with op.batch_alter_table("plugin_versions") as batch:
        batch.drop_column("runtime")
