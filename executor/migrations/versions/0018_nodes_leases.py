"""nodes and fenced leases (issue 15)

A ``nodes`` table (each dispatching process: its engine, runtimes, capacity, labels,
heartbeat, state); invocations carry the node holding them and a lease generation that
every write of a run is conditional on; run tokens carry the generation they were minted
under; activations may require an OCI runtime and a node selector.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime()


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("instance", sa.String(100), nullable=False),
        sa.Column("engine_version", sa.String(100), nullable=False, server_default=""),
        sa.Column("runtimes", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("warm_pool_memory_mib", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("state", sa.String(16), nullable=False, server_default="ready"),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=False),
    )
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(
            sa.Column("lease_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("node_id", sa.String(200), nullable=True))
        batch.create_index("ix_invocations_node", ["node_id", "status"])
    with op.batch_alter_table("invocation_tokens") as batch:
        batch.add_column(
            sa.Column("lease_generation", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("log_records") as batch:
        batch.add_column(sa.Column("node_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    with op.batch_alter_table("activations") as batch:
        batch.add_column(sa.Column("runtime", sa.String(40), nullable=True))
        batch.add_column(sa.Column("node_selector", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("activations") as batch:
        batch.drop_column("node_selector")
        batch.drop_column("runtime")
    with op.batch_alter_table("log_records") as batch:
        batch.drop_column("attempt")
        batch.drop_column("node_id")
    with op.batch_alter_table("invocation_tokens") as batch:
        batch.drop_column("lease_generation")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_index("ix_invocations_node")
        batch.drop_column("node_id")
        batch.drop_column("lease_generation")
    op.drop_table("nodes")
