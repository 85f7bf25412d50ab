"""An invocation's log as the store keeps it: lines numbered in order across attempts, each
naming its node and attempt, written under the attempt's lease generation.

Runs (``executor.run.runner``) and webhook deliveries (``executor.run.webhook``) write
their log through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from executor.run.output import STDERR, STDOUT, OutputLine
from executor.store import leases as lease_store
from executor.store import logs as log_store
from executor.store import outcomes as outcome_store
from executor.store.db import Database
from executor.store.tables import Invocation, utcnow

__all__ = ["RunLogWriter"]

log = logging.getLogger(__name__)


class RunLogWriter:
    """Writes one invocation's log lines to the store, numbered in order across attempts,
    each naming its node and attempt.

    The parts of one message are linked: each record's ``continues`` is the seq of the
    part before it. Every write is conditional on the attempt's lease generation: once
    another node has the run, nothing more is stored and ``lost`` is set.
    """

    def __init__(
        self,
        db: Database,
        invocation: Invocation,
        label_id: str | None,
        on_written: Callable[[], None] = lambda: None,
        seq: int | None = None,
    ) -> None:
        """``seq``: the run's last record's, when the caller read it already."""
        self.db = db
        self.invocation = invocation
        self.label_id = label_id
        self.on_written = on_written
        self.lost = False
        if seq is None:
            with db.session() as session:
                seq = log_store.last_seq(session, invocation.id)
        self.seq = seq
        self._last_part: dict[str, int] = {}  # part_of key -> seq of its latest part

    def write(self, lines: list[OutputLine], read_bytes: Mapping[int, int] | None = None) -> None:
        """Store ``lines``; with ``read_bytes`` (the collector's), record in the same
        transaction how much of the container's output they account for."""
        if not lines:
            return
        records = self.records(lines)
        generation = self.invocation.lease_generation
        with self.db.session() as session:
            if not lease_store.fence(session, self.invocation.id, generation):
                self._refused(len(records))
                return
            log_store.add_records(session, records)
            if read_bytes is not None:
                outcome_store.note_output_read(
                    session,
                    self.invocation.id,
                    generation,
                    stdout=read_bytes[STDOUT],
                    stderr=read_bytes[STDERR],
                )
        self.on_written()  # after the commit: woken readers must see the records

    def records(self, lines: list[OutputLine]) -> list[dict[str, Any]]:
        """``lines`` as the run's next log records, for ``write`` or for a caller that
        stores them in a transaction of its own."""
        now = utcnow()
        records = []
        for line in lines:
            self.seq += 1
            continues = None
            if line.part_of is not None:
                continues = self._last_part.get(line.part_of)
                self._last_part[line.part_of] = self.seq
            records.append(
                {
                    "created_at": now,
                    "tenant_id": self.invocation.tenant_id,
                    "plugin_name": self.invocation.plugin_name,
                    "project_id": self.invocation.project_id,
                    "run_id": self.invocation.id,
                    "log_type": line.log_type,
                    "content": line.content,
                    "asset_id": self.invocation.asset_id,
                    "label_id": self.label_id,
                    "stream": line.stream,
                    "seq": self.seq,
                    "continues": continues,
                    "node_id": self.invocation.node_id,
                    "attempt": self.invocation.attempt,
                }
            )
        return records

    def _refused(self, count: int) -> None:
        if not self.lost:
            log.warning(
                "invocation %s attempt %d: the lease was lost (another node has the run): "
                "its log lines are refused from now on (%d not stored)",
                self.invocation.id,
                self.invocation.attempt,
                count,
            )
        self.lost = True

    def system(self, content: str) -> None:
        self.write([OutputLine("SYSTEM", content, "system")])
