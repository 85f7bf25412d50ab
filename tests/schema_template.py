"""Empty SQLite stores start as a copy of one migrated by Alembic.

Migrating an empty store through every revision took a quarter of the fast tier's CPU
(about 160 stores, each through every migration). In a test process the first empty
SQLite store is migrated by ``Database.migrate`` itself and kept as the template; each
later empty one is that file's copy, and the real ``migrate`` then runs on it and finds it
at head; the copy then gets a store id of its own. A store that holds anything (a test of a
migration brings it to an old revision first), a server database and a path that cannot be
written are migrated as they are.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from executor.store.db import Database

__all__ = ["copied_schema"]


def _empty_sqlite_file(db: Database) -> Path | None:
    """The file of ``db`` when it is a SQLite store that does not exist yet or is empty."""
    if not db.is_sqlite:
        return None
    name = make_url(db.url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    path = Path(name)
    if not path.parent.is_dir():
        return None
    if path.exists() and path.stat().st_size > 0:
        return None
    return path


def _seed(template: Path, migrate: Callable[[Database], None]) -> bool:
    """Migrate a new store and keep it as ``template``; False (and no template) when that
    failed: the store asked for is then migrated as it is, and fails on its own."""
    seeding = template.with_name("seeding.db")
    seed = Database(f"sqlite:///{seeding}")
    try:
        migrate(seed)
    except Exception:
        seed.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{seeding}{suffix}").unlink(missing_ok=True)
        return False
    with seed.engine.connect() as connection:  # the whole schema in the file, none in -wal
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    seed.dispose()
    for suffix in ("-wal", "-shm"):
        Path(f"{seeding}{suffix}").unlink(missing_ok=True)
    seeding.replace(template)
    return True


def _new_identity(db: Database) -> None:
    """Give a copied store an id of its own: the migrations made the template's, and the
    store id is the scope of an executor's containers on the engine. Copies sharing it
    took each other's containers for their own leftovers and removed them mid-run."""
    from executor.store.tables import DispatchLock

    with db.write_session() as session:
        lock = session.get(DispatchLock, 1)
        assert lock is not None
        lock.store_id = str(uuid.uuid4())


@contextlib.contextmanager
def copied_schema(folder: Path) -> Iterator[None]:
    """While open, ``Database.migrate`` of an empty SQLite store copies the template (kept
    in ``folder``, made by the real ``migrate`` on first use), then migrates as it would."""
    template = folder / "head.db"
    lock = threading.Lock()
    migrate: Callable[[Database], None] = Database.migrate

    def from_template(db: Database) -> None:
        path = _empty_sqlite_file(db)
        copied = False
        if path is not None:
            with lock:
                if template.exists() or _seed(template, migrate):
                    # A connection opened already (WAL mode set on the empty file) must
                    # not see the file change under it.
                    db.engine.dispose()
                    for suffix in ("-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
                    shutil.copyfile(template, path)
                    copied = True
        migrate(db)
        if copied:
            _new_identity(db)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Database, "migrate", from_template)
        yield
