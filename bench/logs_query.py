"""Log query timings over 1 million records in a SQLite file (figures only, no assertions).

    .venv/bin/python bench/logs_query.py [--records 1000000] [--db /tmp/logs-bench.db]

Fills a fresh database (schema from the migrations) with records of 20 plugins on 5
projects, runs of 100 lines, levels mostly INFO/DEBUG with a few WARNING/ERROR, spread over
30 days; then times each query shape the API serves (median of 5, warm cache).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from executor.store import logs as log_store
from executor.store.db import Database

PLUGINS = [f"plugin-{n:02d}" for n in range(20)]
PROJECTS = [f"project-{n}" for n in range(5)]
RUN_LINES = 100
LEVELS = ["DEBUG"] * 20 + ["INFO"] * 70 + ["WARNING"] * 8 + ["ERROR"] * 2
REPEATS = 5


def fill(path: Path, count: int) -> tuple[str, datetime]:
    """Write ``count`` records; returns a run id from the middle and the first timestamp."""
    rng = random.Random(5)
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=30)
    step = timedelta(days=30) / count
    rows = []
    middle_run = ""
    for run in range(count // RUN_LINES):
        run_id = f"run-{run:08d}"
        plugin, project = rng.choice(PLUGINS), rng.choice(PROJECTS)
        if run == count // RUN_LINES // 2:
            middle_run = run_id
        for seq in range(1, RUN_LINES + 1):
            n = run * RUN_LINES + seq
            level = rng.choice(LEVELS)
            content = f"asset a-{n % 9973} checked: {rng.choice(['ok', 'iban mismatch', 'eur'])}"
            at = (start + step * n).strftime("%Y-%m-%d %H:%M:%S.%f")
            rows.append((at, plugin, project, run_id, level, content, "stdout", seq))
    connection = sqlite3.connect(path)
    connection.executemany(
        "INSERT INTO log_records (created_at, plugin_name, project_id, run_id, log_type, "
        "content, stream, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return middle_run, start.replace(tzinfo=UTC)


def first_page_size(session: Session, where: log_store.LogFilter) -> int:
    return len(log_store.query_page(session, where, limit=100))


def timed(label: str, run: Callable[[], int]) -> None:
    times = []
    found = 0
    for _ in range(REPEATS):
        began = time.perf_counter()
        found = run()
        times.append((time.perf_counter() - began) * 1000)
    print(f"{label:<58} {statistics.median(times):8.2f} ms  ({found} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/logs-bench.db"))
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.db}{suffix}").unlink(missing_ok=True)
    db = Database(f"sqlite:///{args.db}")
    db.migrate()
    began = time.perf_counter()
    run_id, start = fill(args.db, args.records)
    print(f"filled {args.records} records in {time.perf_counter() - began:.1f} s ({args.db})")
    # As the API asks: always within the caller's tenant.
    base = log_store.LogFilter(tenant_id="default", project_id="project-2", plugin_name="plugin-07")
    middle = start + timedelta(days=15)
    with db.session() as session:
        last = log_store.query_page(session, base, limit=100)[-1].id
        shapes: dict[str, log_store.LogFilter] = {
            "project + plugin, first page": base,
            "project + plugin, level >= ERROR": replace(base, level="ERROR"),
            "project + plugin, level >= WARNING": replace(base, level="WARNING"),
            "project + plugin, start_date = day 15": replace(base, start_date=middle),
            "project + plugin, day 15 to day 16": replace(
                base, start_date=middle, until=middle + timedelta(days=1)
            ),
            "project + plugin, text 'iban'": replace(base, text="iban"),
            "project + plugin, rare text 'a-9971 '": replace(base, text="a-9971 "),
            "one run (run_id)": log_store.LogFilter(tenant_id="default", run_id=run_id),
            "plugin only (all projects)": log_store.LogFilter(
                tenant_id="default", plugin_name="plugin-07"
            ),
        }
        for label, where in shapes.items():
            timed(label, partial(first_page_size, session, where))
        timed(
            "project + plugin, order=desc (newest page)",
            lambda: len(log_store.query_page(session, base, limit=100, order="desc")),
        )
        timed(
            "project + plugin, next page by cursor",
            lambda: len(log_store.query_page(session, base, limit=100, after_id=last)),
        )
        timed(
            "project + plugin, skip=5000 (Kili offset paging)",
            lambda: len(log_store.query_page(session, base, limit=100, skip=5000)),
        )
    db.dispose()


if __name__ == "__main__":
    main()
