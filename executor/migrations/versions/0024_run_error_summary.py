"""a failed run keeps its error's type, message and location (issue 26)

``invocations.error_type``, ``error_message`` and ``error_location``, like Lambda's
``errorType`` and ``errorMessage``: the exception the handler raised as the runtime reported
it, or the executor's own classification (``executor.store.run_errors``). Runs that ended
before this revision have none.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(sa.Column("error_type", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("error_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("error_location", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("error_location")
        batch.drop_column("error_message")
        batch.drop_column("error_type")
