"""Empty SQLite stores copied from the migrated template are stores of their own: each has
its own store id, the scope of its executor's containers on a shared Docker Engine."""

from __future__ import annotations

from pathlib import Path

from executor.store.db import Database


def test_stores_copied_from_the_template_have_ids_of_their_own(tmp_path: Path) -> None:
    stores = [Database(f"sqlite:///{tmp_path / f'store-{n}.db'}") for n in range(3)]
    for store in stores:
        store.migrate()  # the session's template (tests/conftest.py: migrated_schema)

    ids = [store.store_id() for store in stores]

    assert len(set(ids)) == 3, ids
    for store in stores:
        store.dispose()
