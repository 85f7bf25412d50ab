"""gateway: per-invocation token hashes and the gateway call log (issue 3)

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invocation_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("invocation_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["invocation_id"], ["invocations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    with op.batch_alter_table("invocation_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invocation_tokens_invocation_id"), ["invocation_id"], unique=False
        )
    op.create_table(
        "gateway_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invocation_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["invocation_id"], ["invocations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gateway_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_calls_invocation_id"), ["invocation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_calls_invocation_id"))
    op.drop_table("gateway_calls")
    with op.batch_alter_table("invocation_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invocation_tokens_invocation_id"))
    op.drop_table("invocation_tokens")
