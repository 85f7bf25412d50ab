"""claims on PostgreSQL check their limits and take their runs in one statement

``running_of_keys``: the running invocations of each (kind, key) limit key asked about
(1 plugin, 2 project, 3 tenant; a tenant counts its plugin runs only, as
``executor.store.claim_statements.ROOM`` does).
``claim_fits``: takes the advisory lock of each key, in one order for every claimer, then
says whether each key's running count plus the runs a claim adds stays within its cap,
counted after the locks (a volatile function's statements each take a new snapshot).
A claim's update of its runs joins it (``claim_statements.TAKE_FITTING``), so the keys are
held from the count to the commit with no round trip to the claimer between.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

RUNNING_OF_KEYS = """
CREATE FUNCTION running_of_keys(kinds integer[], keys text[])
RETURNS TABLE (kind integer, key text, number bigint)
LANGUAGE sql STABLE AS $$
    SELECT k.kind, k.key, (
        SELECT count(*) FROM invocations AS i
        WHERE i.status = 'running' AND CASE k.kind
            WHEN 1 THEN i.plugin_id = k.key
            WHEN 2 THEN i.project_id = k.key
            ELSE i.tenant_id = k.key
                AND i.version_id NOT IN (SELECT w.version_id FROM webhooks AS w)
        END
    )
    FROM unnest(kinds, keys) AS k (kind, key)
$$
"""

# OFFSET 0 keeps the sorted subquery whole: the locks are taken in its order.
CLAIM_FITS = """
CREATE FUNCTION claim_fits(kinds integer[], keys text[], adds integer[], caps integer[])
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM count(pg_advisory_xact_lock(s.kind, s.hash)) FROM (
        SELECT k.kind, hashtext(k.key) AS hash FROM unnest(kinds, keys) AS k (kind, key)
        ORDER BY 1, 2 OFFSET 0
    ) AS s;
    RETURN NOT EXISTS (
        SELECT 1 FROM running_of_keys(kinds, keys) AS r
        JOIN unnest(kinds, keys, adds, caps) AS k (kind, key, add, cap)
            ON k.kind = r.kind AND k.key = r.key
        WHERE r.number + k.add > k.cap
    );
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # one process claims on SQLite: the dispatch_lock row serializes claims
    op.execute(RUNNING_OF_KEYS)
    op.execute(CLAIM_FITS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION claim_fits(integer[], text[], integer[], integer[])")
    op.execute("DROP FUNCTION running_of_keys(integer[], text[])")
