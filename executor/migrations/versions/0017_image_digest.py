"""images through a registry (issue 15)

A version whose image was pushed to the registry records it as ``repo@sha256:...``
(``image_digest``): the reference runs use.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plugin_versions") as batch:
        batch.add_column(sa.Column("image_digest", sa.String(length=400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plugin_versions") as batch:
        batch.drop_column("image_digest")
