"""output kept across a restart and long lines in parts (issue 13)

Invocations remember how much of their container's output is stored (``stdout_read_bytes``,
``stderr_read_bytes``); a log record may continue another (``continues``, its seq).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

READ_COLUMNS = ("stdout_read_bytes", "stderr_read_bytes")


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        for name in READ_COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("log_records") as batch:
        batch.add_column(sa.Column("continues", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_records") as batch:
        batch.drop_column("continues")
    with op.batch_alter_table("invocations") as batch:
        for name in READ_COLUMNS:
            batch.drop_column(name)
