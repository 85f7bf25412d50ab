"""state every API process shares: key buckets and upload tickets (issue 25)

``key_buckets``: each tenant key's request and upload-byte token buckets, taken with one
upsert (``executor.store.buckets``), so N API processes give a key its limit once; UNLOGGED
on PostgreSQL.
``upload_tickets``: the GraphQL upload URLs' one-time tickets (SHA-256 only) and the
archives PUT to them, so the PUT and the runner call may reach different processes.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Buckets are rewritten on every request and may be lost in a crash (every key starts
    # full again): on PostgreSQL no WAL for them, so their commits wait for no flush.
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "key_buckets",
        sa.Column("key_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_s", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        prefixes=unlogged,
    )
    op.create_table(
        "upload_tickets",
        sa.Column("ticket_sha256", sa.String(64), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(64),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("plugin_name", sa.String(200), nullable=False),
        sa.Column("is_update", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_upload_tickets_tenant_id", "upload_tickets", ["tenant_id"])
    op.create_index("ix_upload_tickets_expires_at", "upload_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_table("upload_tickets")
    op.drop_table("key_buckets")
