"""infrastructure retries by time budget (issue 22): when a run's infrastructure failures began

``invocations.infra_failing_since`` is the store's time of the run's first infrastructure
failure; its retries last ``EXECUTOR_INFRA_RETRY_BUDGET_S`` from then.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(sa.Column("infra_failing_since", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("infra_failing_since")
