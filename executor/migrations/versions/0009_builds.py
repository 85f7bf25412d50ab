"""builds: pip freeze and GC stamp per version, rollback pointer, activation pin

Revision ID: 0009
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime()


def upgrade() -> None:
    with op.batch_alter_table("plugin_versions") as batch:
        batch.add_column(sa.Column("pip_freeze", sa.Text(), nullable=True))
        batch.add_column(sa.Column("image_removed_at", UTC_DATETIME, nullable=True))
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("current_version_id", sa.String(36), nullable=True))
    with op.batch_alter_table("activations") as batch:
        batch.add_column(sa.Column("version_number", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("activations") as batch:
        batch.drop_column("version_number")
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("current_version_id")
    with op.batch_alter_table("plugin_versions") as batch:
        batch.drop_column("image_removed_at")
        batch.drop_column("pip_freeze")
