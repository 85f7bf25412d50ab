"""A run's end, or its return to the queue, as the store records it under the attempt's
lease generation: the run's row first, its tokens after (the lock order lease expiry takes
too), then the run's metrics. Once another node has the run, nothing is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from executor.gateway.live import LiveTokens
from executor.metrics import Metrics
from executor.statuses import AttemptKind, InvocationStatus
from executor.store import gateway as gateway_store
from executor.store import logs as log_store
from executor.store import outcomes as outcome_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.outcomes import RunOutput
from executor.store.run_errors import RunError
from executor.store.tables import Invocation

__all__ = ["RunEnding", "lease_lost"]

log = logging.getLogger(__name__)


def lease_lost(invocation: Invocation) -> None:
    log.warning(
        "invocation %s attempt %d: lease lost, result not recorded (another node has the run)",
        invocation.id,
        invocation.attempt,
    )


class RunEnding:
    """Ends runs (``finish``) or queues them again (``requeue``); ``live`` holds this
    process's tokens, ``on_logs_written`` is called after an end was committed."""

    def __init__(
        self,
        db: Database,
        live: LiveTokens,
        metrics: Metrics,
        on_logs_written: Callable[[], None],
    ) -> None:
        self.db = db
        self.live = live
        self.metrics = metrics
        self.on_logs_written = on_logs_written

    def requeue(
        self, invocation: Invocation, reason: str, delay_s: float, kind: AttemptKind
    ) -> None:
        generation = invocation.lease_generation
        self.live.revoke(invocation.id)
        with self.db.session() as session:  # row, then tokens: see finish
            queued = outcome_store.retry_later(
                session, invocation.id, generation, reason, delay_s, kind
            )
            gateway_store.revoke_for(session, invocation.id, generation)
        if not queued:
            lease_lost(invocation)

    def finish(
        self,
        invocation: Invocation,
        status: InvocationStatus,
        exit_code: int | None,
        error: str | None,
        reason: str | None = None,
        output: RunOutput | None = None,
        kind: AttemptKind | None = None,
        failure: RunError | None = None,
        at: datetime | None = None,
        last: list[dict[str, Any]] | None = None,
    ) -> None:
        """End the run; ``failure`` (default: classified from ``status`` and ``error``) is
        the summary its row keeps, ``at`` (default: now) when it ended, ``last`` log
        records stored with the end."""
        self.live.revoke(invocation.id)
        with self.db.session() as session:
            # The run's row first, its tokens after, as lease expiry does (one lock order);
            # both commit together: a finished run has no live token.
            recorded = outcome_store.finish(
                session,
                invocation.id,
                invocation.lease_generation,
                reason,
                status=status,
                exit_code=exit_code,
                error=error,
                output=output,
                kind=kind,
                failure=failure,
                at=at,
            )
            if recorded and last:
                log_store.add_records(session, last)
            gateway_store.revoke_for(session, invocation.id, invocation.lease_generation)
            row = query_store.find_invocation(session, invocation.id) if recorded else None
        self.on_logs_written()  # live followers of this run learn that it ended
        if row is None:
            lease_lost(invocation)
            return
        self._measured(row, status)

    def _measured(self, row: Invocation, status: InvocationStatus) -> None:
        self.metrics.run_finished(row.tenant_id, row.plugin_name, status)
        duration = row.duration_ms / 1000 if row.duration_ms is not None else None
        latency = None
        if row.handler_started_at is not None:
            latency = max((row.handler_started_at - row.queued_at).total_seconds(), 0.0)
        self.metrics.run_timed(row.tenant_id, row.plugin_name, duration, latency)
