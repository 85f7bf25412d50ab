"""dispatch: leases, backoff, retries, replay, the claim lock

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime()


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("not_before", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("deadline_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("max_retries", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempts", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("replay_of", sa.String(36), nullable=True))
        batch.create_index("ix_invocations_lease", ["status", "lease_expires_at"])
    with op.batch_alter_table("activations") as batch:
        batch.add_column(sa.Column("max_retries", sa.Integer(), nullable=False, server_default="0"))
    lock = op.create_table(
        "dispatch_lock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("claimed_at", UTC_DATETIME, nullable=True),
        sa.Column("store_id", sa.String(36), nullable=False),
    )
    # The store's identity labels its containers, so executors with other stores that share
    # a Docker Engine never touch them.
    op.bulk_insert(lock, [{"id": 1, "store_id": str(uuid.uuid4())}])


def downgrade() -> None:
    op.drop_table("dispatch_lock")
    with op.batch_alter_table("activations") as batch:
        batch.drop_column("max_retries")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_index("ix_invocations_lease")
        for column in (
            "replay_of",
            "attempts",
            "max_retries",
            "deadline_at",
            "not_before",
            "lease_expires_at",
            "lease_owner",
        ):
            batch.drop_column(column)
