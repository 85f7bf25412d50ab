"""Retention on a real SQLite store: backdated logs, runs and events are purged by age,
a plugin over its log budget loses its oldest runs, and ingest is never held up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from executor.settings import RetentionSettings, Settings
from executor.store import logs as log_store
from executor.store.db import Database
from executor.store.tables import Event, Invocation, LogRecord, Plugin, PluginVersion, utcnow
from executor.upkeep.retention import Retention

NOW = utcnow()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'retention.db'}")
    database.migrate()
    yield database
    database.dispose()


def settings(tmp_path: Path, **overrides: Any) -> RetentionSettings:
    return Settings(data_dir=tmp_path, operator_key="k", **overrides).retention


def add_run(
    db: Database,
    run_id: str,
    *,
    plugin: str = "qa",
    age_days: float = 0,
    status: str = "succeeded",
    lines: int = 3,
    log_bytes: int = 100,
) -> None:
    at = NOW - timedelta(days=age_days)
    with db.session() as session:
        plugin_row = session.scalar(select(Plugin).where(Plugin.name == plugin))
        if plugin_row is None:
            plugin_row = Plugin(name=plugin)
            session.add(plugin_row)
            session.flush()
            session.add(
                PluginVersion(
                    id=f"v-{plugin}",
                    plugin_id=plugin_row.id,
                    number=1,
                    source_sha256="0",
                    source=b"",
                )
            )
        session.add(Event(id=f"e-{run_id}", type="onSubmit", project_id="p", received_at=at))
        session.flush()
        session.add(
            Invocation(
                id=run_id,
                event_id=f"e-{run_id}",
                plugin_id=plugin_row.id,
                version_id=f"v-{plugin}",
                plugin_name=plugin,
                version_number=1,
                project_id="p",
                event_type="onSubmit",
                status=status,
                queued_at=at,
                started_at=at,
                finished_at=None if status == "running" else at,
                log_bytes=log_bytes,
            )
        )
        log_store.add_records(
            session,
            [
                {
                    "created_at": at,
                    "plugin_name": plugin,
                    "project_id": "p",
                    "run_id": run_id,
                    "log_type": "INFO",
                    "content": f"{run_id} line {n}",
                    "stream": "stdout",
                    "seq": n,
                }
                for n in range(1, lines + 1)
            ],
        )


def runs(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Invocation.id)))


def log_runs(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(LogRecord.run_id).distinct()))


def events(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Event.id)))


def test_purge_by_age_keeps_recent_and_running_work(db: Database, tmp_path: Path) -> None:
    add_run(db, "old-1", age_days=45)
    add_run(db, "old-2", age_days=31, status="failed")
    add_run(db, "recent", age_days=29)
    add_run(db, "still-running", age_days=40, status="running")
    report = Retention(db, settings(tmp_path, log_retention_days=30)).purge()
    assert runs(db) == {"recent", "still-running"}
    # A running invocation keeps its record; its lines older than the limit still go.
    assert log_runs(db) == {"recent"}
    assert events(db) == {"e-recent", "e-still-running"}
    assert (report.invocations, report.log_records, report.events) == (2, 9, 2)
    assert not Retention(db, settings(tmp_path, log_retention_days=30)).purge()


def test_purge_over_a_plugin_budget_drops_that_plugins_oldest_runs(
    db: Database, tmp_path: Path
) -> None:
    for n in range(6):  # 6 runs of 400 KiB each: 2.4 MiB against a 1 MiB budget
        add_run(db, f"big-{n}", plugin="big", age_days=6 - n, log_bytes=400 * 1024)
    add_run(db, "small-0", plugin="small", age_days=10, log_bytes=400 * 1024)
    add_run(db, "big-live", plugin="big", age_days=9, status="running", log_bytes=10**7)
    Retention(db, settings(tmp_path, plugin_log_budget_mib=1.0)).purge()
    # 2400 KiB - 1024 KiB = 1376 KiB too much: the 4 oldest runs go, 800 KiB stay.
    assert runs(db) == {"big-4", "big-5", "small-0", "big-live"}
    assert log_runs(db) == runs(db)


def test_background_task_purges_in_batches_without_blocking_ingest(
    db: Database, tmp_path: Path
) -> None:
    with db.session() as session:
        old = NOW - timedelta(days=60)
        log_store.add_records(
            session,
            [
                {
                    "created_at": old,
                    "plugin_name": "qa",
                    "project_id": "p",
                    "run_id": f"r{n // 100}",
                    "log_type": "INFO",
                    "content": "x" * 80,
                    "stream": "stdout",
                    "seq": n,
                }
                for n in range(30_000)
            ],
        )
    retention = Retention(db, settings(tmp_path, retention_batch=500, retention_interval_s=3600))
    latencies: list[float] = []
    stop = threading.Event()

    def ingest() -> None:
        n = 0
        while not stop.is_set():
            began = time.perf_counter()
            add_run(db, f"new-{n}")
            latencies.append(time.perf_counter() - began)
            n += 1

    writer = threading.Thread(target=ingest)
    writer.start()
    retention.start()
    deadline = time.monotonic() + 60
    while retention.last_report is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    writer.join()
    retention.stop()
    assert retention.last_report is not None
    assert retention.last_report.log_records == 30_000
    with db.session() as session:
        left = session.scalar(select(func.count()).select_from(LogRecord))
    assert left == 3 * len(latencies)  # every ingested run's lines, none of the old ones
    assert len(latencies) > 0 and max(latencies) < 1.0
