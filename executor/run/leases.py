"""The leases of a dispatcher's runs, kept every third of a lease: the node beats, the leases
of what it runs are renewed, invocations whose lease expired elsewhere (their executor died,
or its node was lost) are re-queued or, at their last attempt, ended ``dead``, and every
lease the orphaned containers of dead executors are swept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from executor.engine import Engine
from executor.gateway.live import LiveTokens
from executor.metrics import Metrics
from executor.run.node import NodeMembership
from executor.run.recovery import sweep_orphans
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.store import gateway as gateway_store
from executor.store import leases as lease_store
from executor.store import outcomes as outcome_store
from executor.store.db import Database
from executor.store.tables import Invocation

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Keeps the leases of the runs ``running_ids()`` names, held by ``owner`` on ``node``;
    ``on_logs_written`` is called when expired runs ended (their followers learn it)."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        node: NodeMembership,
        owner: str,
        running_ids: Callable[[], list[str]],
        live: LiveTokens,
        on_logs_written: Callable[[], None],
    ) -> None:
        self.db = db
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.node = node
        self.owner = owner
        self.running_ids = running_ids
        self.live = live
        self.on_logs_written = on_logs_written
        self._renewed_at = 0.0
        self._swept_at = time.monotonic()

    def maintain(self) -> None:
        """Beat, renew and re-queue when a third of a lease passed since the last time
        that worked; sweep orphans once a lease."""
        now = time.monotonic()
        if now - self._renewed_at < self.settings.runs.lease_s / 3:
            return
        self.node.beat()
        running = self.running_ids()
        sent_at = time.monotonic()
        with self.db.session() as session:
            lease_store.renew_leases(session, self.owner, running, self.settings.runs.lease_s)
            expired = outcome_store.requeue_expired(session, self.settings.runs.retry_max_attempts)
            for invocation in expired:
                self.live.revoke(invocation.id)
                gateway_store.revoke_for(session, invocation.id)
        # Only once it worked: a node cut off from the store beats again at the next poll
        # after it is back, before it claims (the claim refuses a stale heartbeat).
        self._renewed_at = now
        self.live.renewed(running, sent_at, sent_at + self.settings.runs.lease_s)
        self._report_expired(expired)
        if now - self._swept_at >= self.settings.runs.lease_s:
            self._swept_at = now
            sweep_orphans(self.db, self.engine)

    def _report_expired(self, expired: list[Invocation]) -> None:
        requeued = [i for i in expired if i.status == InvocationStatus.QUEUED]
        if requeued:
            log.warning("re-queued %d invocations whose executor stopped", len(requeued))
        for invocation in expired:
            if invocation.status == InvocationStatus.DEAD:
                log.warning("invocation %s: %s", invocation.id, invocation.error)
                self.metrics.run_finished(
                    invocation.tenant_id, invocation.plugin_name, InvocationStatus.DEAD
                )
        if len(requeued) < len(expired):
            self.on_logs_written()  # live followers of those runs learn that they ended
