"""Log records committed out of id order on PostgreSQL: paging and follow skip none."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import text

from executor.store import logs as log_store
from executor.store.db import Database, Session

DEADLINE_S = 60


def _records(run_id: str, count: int) -> list[dict[str, object]]:
    return [
        {
            "created_at": datetime.now(UTC),
            "plugin_name": "p",
            "project_id": "order",
            "run_id": run_id,
            "log_type": "INFO",
            "content": f"{run_id} line {seq}",
            "stream": "stdout",
            "seq": seq,
        }
        for seq in range(1, count + 1)
    ]


def _page_all(db: Database, after_id: int) -> tuple[list[str], int]:
    """Every record a follower reads from ``after_id`` now, page by page; the new cursor."""
    seen: list[str] = []
    where = log_store.LogFilter(project_id="order")
    while True:
        with db.session() as session:
            page = log_store.records_after(session, where, after_id, limit=2)
        if not page:
            return seen, after_id
        seen += [record.content for record in page]
        after_id = page[-1].id


def _waiting_for_the_log_lock(db: Database, writer: threading.Thread) -> bool:
    """True once ``writer`` waits for the log writers' lock (or False once it is done)."""
    deadline = time.monotonic() + DEADLINE_S
    while writer.is_alive():
        with db.session() as session:
            waiting = session.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
        if waiting:
            return True
        assert time.monotonic() < deadline, "the second writer neither waited nor finished"
        time.sleep(0.05)
    return False


def test_a_follower_sees_every_record_once_when_writers_commit_out_of_id_order(
    postgres_url: str,
) -> None:
    db = Database(postgres_url)
    db.migrate()
    try:
        with db.session() as session:
            start = log_store.last_id(session)
        # The first writer takes its ids and holds its transaction open...
        first = Session(db.engine)
        first.begin()
        log_store.add_records(first, _records("first", 3))
        # ...while a second writer, on its own connection, inserts and commits.
        second = threading.Thread(
            target=lambda: _write(db, _records("second", 3)), name="second writer"
        )
        second.start()
        waited = _waiting_for_the_log_lock(db, second)
        # A follower reads now: before the fix it saw the second writer's (higher) ids and
        # moved its cursor past the first writer's, which it then never read.
        seen, cursor = _page_all(db, start)
        first.commit()
        first.close()
        second.join(DEADLINE_S)
        assert not second.is_alive()
        later, _ = _page_all(db, cursor)
        everything = seen + later
        expected = [f"{run} line {seq}" for run in ("first", "second") for seq in (1, 2, 3)]
        assert sorted(everything) == sorted(expected)  # every record...
        assert len(everything) == len(set(everything))  # ...exactly once
        assert waited  # the second writer waited for the first one's commit
        with db.session() as session:  # and paging from the start gives them in commit order
            where = log_store.LogFilter(project_id="order")
            rows = log_store.query_page(session, where, limit=10, after_id=start)
        assert [r.content for r in rows] == expected
    finally:
        db.dispose()


def _write(db: Database, records: list[dict[str, object]]) -> None:
    with db.session() as session:
        log_store.add_records(session, records)
