"""webhooks: a plugin that is a URL instead of code (issue 16, item 4)

Plugins get a ``kind`` (``code`` or ``webhook``); each webhook version keeps where its
events go (``webhooks``: URL, Authorization header, signing secret); a delivery records
the receiver's HTTP status (``invocations.http_status``).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="code"))
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(sa.Column("http_status", sa.Integer(), nullable=True))
    op.create_table(
        "webhooks",
        sa.Column(
            "version_id",
            sa.String(36),
            sa.ForeignKey("plugin_versions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("signing_secret", sa.String(100), nullable=False),
        sa.Column("handler_types", sa.JSON(), nullable=False),
        sa.Column("event_matcher", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("http_status")
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("kind")
