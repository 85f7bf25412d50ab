"""plugin names are free text, one per tenant up to case and Unicode form (issue 26)

``plugins.name_key``: ``executor.identifiers.plugin_name_key(name)``, the SHA-256 of the name
NFKC-normalised and case-folded, unique per tenant, so ``qa_bot`` and ``QA_bot`` cannot
both exist. Existing rows get their key here. Names written before were ASCII letters,
digits, '_', '.' and '-', so two may differ only in case: the oldest keeps the key, the
others get one no name can have (the digest of the folded name with '/' and the plugin's
id: names cannot hold '/'); they keep working by their exact names, and a warning lists
them.

The column is added with a server default (so SQLite adds it in place, without rebuilding
the table its versions and activations refer to); every insert sets it.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
INDEX = "uq_plugins_tenant_name_key"


def _folded(name: str) -> str:
    # As executor.identifiers.plugin_name_key folds at this revision (kept here: a migration
    # must not change with the application's code).
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("plugins") as batch:
        batch.add_column(sa.Column("name_key", sa.String(64), nullable=False, server_default=""))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, tenant_id, name FROM plugins ORDER BY created_at, id")
    ).all()
    seen: dict[tuple[str, str], str] = {}
    keys = []
    for plugin_id, tenant_id, name in rows:
        key = _digest(_folded(name))
        first = seen.setdefault((tenant_id, key), name)
        if first != name:
            log.warning(
                "tenant %r: plugin %r has the name of %r but for case; both keep their exact "
                "names, and no new plugin can take either",
                tenant_id,
                name,
                first,
            )
            key = _digest(f"{_folded(name)}/{plugin_id}")
        keys.append({"id": plugin_id, "key": key})
    if keys:
        connection.execute(sa.text("UPDATE plugins SET name_key = :key WHERE id = :id"), keys)
    op.create_index(INDEX, "plugins", ["tenant_id", "name_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="plugins")
    with op.batch_alter_table("plugins") as batch:
        batch.drop_column("name_key")
