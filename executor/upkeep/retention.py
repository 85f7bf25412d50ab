"""Retention: a background task purging old logs and finished invocation records.

Two rules, checked every ``retention_interval_s``:
- age: log records, finished invocations (with their logs) and unused events older than
  ``log_retention_days`` go;
- size: when a plugin's finished runs hold more than ``plugin_log_budget_mib`` of logs,
  its oldest runs go (records and logs together) until it is under budget.

Deletes run in batches of ``retention_batch`` rows, one short transaction each, so event
ingest and log writers wait at most one batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from executor.periodic import Periodic
from executor.settings import MIB, RetentionSettings
from executor.store import logs as log_store
from executor.store import retention as retention_store
from executor.store.db import Database
from executor.store.tables import utcnow

__all__ = ["PurgeReport", "Retention"]

log = logging.getLogger(__name__)

STOP_WAIT_S = 30.0


@dataclass
class PurgeReport:
    """What one purge removed."""

    log_records: int = 0
    invocations: int = 0
    events: int = 0

    def __bool__(self) -> bool:
        return bool(self.log_records or self.invocations or self.events)


class Retention:
    """Runs ``purge()`` in a daemon thread every ``retention_interval_s`` (first at start)."""

    def __init__(self, db: Database, retention: RetentionSettings) -> None:
        self.db = db
        self.max_age = timedelta(days=retention.log_retention_days)
        self.budget_bytes = int(retention.plugin_log_budget_mib * MIB)
        self.batch = retention.retention_batch
        self.interval_s = retention.retention_interval_s
        self.last_report: PurgeReport | None = None
        self.keeper = Periodic("retention", self._purge_and_keep, self.interval_s, log)

    def start(self) -> None:
        self.keeper.start()

    def stop(self) -> None:
        self.keeper.stop(STOP_WAIT_S)

    def _purge_and_keep(self) -> None:
        self.last_report = self.purge()

    def purge(self) -> PurgeReport:
        """Apply both rules once; returns what went."""
        report = PurgeReport()
        self._purge_by_age(report)
        self._purge_over_budget(report)
        if report:
            log.info("retention purged %s", report)
        return report

    def _purge_by_age(self, report: PurgeReport) -> None:
        cutoff = utcnow() - self.max_age
        while not self.keeper.stopping:
            with self.db.session() as session:
                ids = log_store.old_record_ids(session, cutoff, self.batch)
                report.log_records += log_store.delete_ids(session, ids)
            if len(ids) < self.batch:
                break
        while not self.keeper.stopping:
            with self.db.session() as session:
                runs = retention_store.finished_before(session, cutoff, self.batch)
                self._count(report, retention_store.delete_invocations(session, runs))
            if len(runs) < self.batch:
                break
        while not self.keeper.stopping:
            with self.db.session() as session:
                gone = retention_store.delete_orphan_events(session, cutoff, self.batch)
            report.events += gone
            if gone < self.batch:
                break

    def _purge_over_budget(self, report: PurgeReport) -> None:
        with self.db.session() as session:
            over = retention_store.plugins_over_budget(session, self.budget_bytes)
        for plugin, size in over.items():
            excess = size - self.budget_bytes
            while excess > 0 and not self.keeper.stopping:
                with self.db.session() as session:
                    runs = retention_store.oldest_finished_runs(session, plugin, self.batch)
                    chosen = []
                    for run_id, run_bytes in runs:
                        if excess <= 0:
                            break
                        chosen.append(run_id)
                        excess -= run_bytes
                    self._count(report, retention_store.delete_invocations(session, chosen))
                if not runs:
                    break

    @staticmethod
    def _count(report: PurgeReport, deleted: tuple[int, int]) -> None:
        report.invocations += deleted[0]
        report.log_records += deleted[1]
