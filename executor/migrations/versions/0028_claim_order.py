"""claims read their candidates from the queue's index, in order, and stop at the window

``ix_invocations_status_queued_id`` (status, queued_at, id) replaces (status, queued_at):
the candidates are ordered by ``queued_at, id``, so the index gives them in that order and
a claim reads as many queued rows as its window needs, not the whole queue to sort it.

``claim_runs_here`` (PostgreSQL): whether a node with ``runtimes`` and ``labels`` can run an
activation's runs (``claim_statements.candidates``). The same test written inline made
the planner guess that almost no queued run passes it (a JSONB containment is taken to
match one row in a thousand), so it read and sorted every queued run on each claim: 2.4 ms
with 1,500 queued, against 0.1 ms from the index. A PL/pgSQL function is not inlined, and
the planner takes a third of the rows to pass it.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

CLAIM_RUNS_HERE = """
CREATE FUNCTION claim_runs_here(
    runtime varchar, selector json, default_runtime varchar, runtimes varchar[], labels jsonb
)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN coalesce(runtime, default_runtime) = ANY(runtimes)
        AND coalesce(nullif(selector::jsonb, 'null'::jsonb), '{}'::jsonb) <@ labels;
END
$$
"""


def upgrade() -> None:
    op.create_index("ix_invocations_status_queued_id", "invocations", ["status", "queued_at", "id"])
    op.drop_index("ix_invocations_status_queued", table_name="invocations")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_RUNS_HERE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION claim_runs_here(varchar, json, varchar, varchar[], jsonb)")
    op.create_index("ix_invocations_status_queued", "invocations", ["status", "queued_at"])
    op.drop_index("ix_invocations_status_queued_id", table_name="invocations")
