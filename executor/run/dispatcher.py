"""Claims queued invocations under a lease and runs them within the concurrency limits.

Several executor processes may share one store: each is a node (``executor.run.node``),
claims what its node can run with its own ``owner`` id, renews the leases of what it runs,
and re-queues invocations whose lease expired (their executor died, or its node was lost).
The dispatcher is woken when events are stored (``wake``) and also polls.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait

from executor.engine import Engine
from executor.gateway.live import LiveTokens
from executor.metrics import Metrics
from executor.periodic import Periodic
from executor.run.jobs import Jobs
from executor.run.leases import LeaseKeeper
from executor.run.node import NodeMembership
from executor.run.recovery import reconcile
from executor.run.runner import InvocationRunner
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.run.webhook import WebhookDeliverer
from executor.settings import Settings
from executor.store import claims as claim_store
from executor.store.announce import worth_a_look
from executor.store.db import Database
from executor.store.queries import RunInputs
from executor.store.tables import Invocation, Webhook

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """Who holds a lease: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Dispatcher:
    """Runs queued plugin invocations on a pool of ``max_concurrent_runs`` threads and
    webhook deliveries on a pool of ``webhook_pool_size`` threads of their own, where each
    tenant holds at most its share: a slow receiver holds up neither plugin runs nor
    another tenant's deliveries."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        on_logs_written: Callable[[], None] = lambda: None,
        live: LiveTokens | None = None,
    ) -> None:
        """``on_logs_written`` is called after log records or an outcome were committed;
        ``live`` is shared with this process's gateway: the runs' tokens and the leases
        this dispatcher vouches for (``executor.gateway.live``)."""
        self.db = db
        self.live = live or LiveTokens()
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.on_logs_written = on_logs_written
        self.owner = new_owner_id()
        self.sandbox = Sandbox(
            engine,
            settings.sandbox,
            settings.resolved_gateway_socket_dir,
            lambda phase, seconds: metrics.start_phases.labels(phase).observe(seconds),
        )
        self.pool = WarmPool(db, self.sandbox, settings)
        self.node = NodeMembership(db, engine, settings, self.owner)
        self.pool.on_change = self.node.publish_warm
        self._handing_back = threading.Event()
        self.keeper = Periodic(
            "dispatcher", self._maintain_and_claim, settings.runs.dispatch_poll_s, log
        )
        self.runner = InvocationRunner(
            db,
            self.sandbox,
            self.pool,
            settings,
            metrics,
            self._handing_back.is_set,
            on_logs_written,
            self.live,
        )
        self.deliverer = WebhookDeliverer(db, settings, metrics, on_logs_written)
        self.limits = claim_store.ClaimLimits(
            per_plugin=settings.runs.max_runs_per_plugin,
            per_project=settings.runs.max_runs_per_project,
            per_tenant=settings.tenancy.tenant_max_concurrent_runs,
        )
        self.jobs = Jobs(settings, self.runner, self.live, self.keeper.wake)
        self.leases = LeaseKeeper(
            db,
            engine,
            settings,
            metrics,
            self.node,
            self.owner,
            self.jobs.running_ids,
            self.live,
            on_logs_written,
        )

    def start(self) -> None:
        """Join as a node, reconcile what this node's previous process left, then start
        claiming."""
        claim = self.node.join()
        for invocation, container_id, running in reconcile(
            self.db, self.engine, self.owner, self.settings.runs.lease_s, claim.node_id
        ):
            self.jobs.submit(self.runner.watch, invocation, container_id, running)
        self.pool.start()
        self.keeper.start()

    def wake(self) -> None:
        """New work was queued: look at the queue now rather than at the next poll."""
        self.keeper.wake()

    def announced(self, payload: str | None) -> None:
        """Another process queued runs (``payload``: where they may go,
        ``executor.store.announce``): look now if this node may run one of them."""
        if worth_a_look(payload, self.node.claim):
            self.wake()

    def running_ids(self) -> list[str]:
        return self.jobs.running_ids()

    def stop(self) -> None:
        """Drain: claim nothing more, let running invocations finish for up to
        ``drain_timeout_s``, then kill what is left and hand it back to the queue; empty
        the warm pools."""
        self.keeper.stop()
        _, not_done = wait(self.jobs.pending(), timeout=self.settings.runs.drain_timeout_s)
        if not_done:
            self._hand_back()
        self.jobs.shutdown()
        self.pool.stop()
        self.deliverer.close()

    def _hand_back(self) -> None:
        self._handing_back.set()
        self.sandbox.kill_serving(set(self.running_ids()))

    def _maintain_and_claim(self) -> None:
        self.leases.maintain()
        self._claim_available()

    def _claim_available(self) -> None:
        slots, webhook_slots = self.jobs.free_slots()
        if slots <= 0 and webhook_slots.free <= 0:
            return
        if self.keeper.stopping or not self.node.takes_runs:
            return
        assert self.node.claim is not None  # joined at start
        sent_at = time.monotonic()  # a lease it takes expires lease_s after, at the earliest
        committed = threading.Event()  # set once the claim's transaction ended
        try:
            with self.db.session() as session:
                # What each run runs is read by the claim (on PostgreSQL in the update that
                # takes the runs): a start has no read of its own before its hand-off. A
                # webhook's invocations go to the deliverer, not to a container.
                claimed, inputs = claim_store.claim_with_inputs(
                    session,
                    self.owner,
                    slots,
                    self.settings.runs.lease_s,
                    self.limits,
                    self.node.claim,
                    self.settings.warm_pool.placement_grace_s,
                    webhooks=webhook_slots,
                )
                self.live.lease([i.id for i in claimed], sent_at + self.settings.runs.lease_s)
                runs = [i for i in claimed if not _delivery(inputs.get(i.id))]
                if not self.db.is_sqlite:
                    # On PostgreSQL the claim's runs are detached already (read on the
                    # driver's cursor) and start while its commit is on the way: each takes
                    # its container and mints its token meanwhile; its first write waits
                    # for the commit (``InvocationRunner.run``).
                    self._start(runs, inputs, committed)
        finally:
            committed.set()
        if self.db.is_sqlite:  # the runs are the session's until it closed
            self._start(runs, inputs, committed)
        for invocation in claimed:  # a delivery calls out at once: only once committed
            webhook = _delivery(inputs.get(invocation.id))
            if webhook is not None:
                self.jobs.submit_delivery(self.deliverer.deliver, invocation, webhook)

    def _start(
        self, runs: list[Invocation], inputs: dict[str, RunInputs], committed: threading.Event
    ) -> None:
        for invocation in runs:
            self.jobs.submit(self.runner.run, invocation, inputs.get(invocation.id), committed)


def _delivery(found: RunInputs | None) -> Webhook | None:
    """The webhook a claimed invocation delivers to (None: a plugin run)."""
    return found.webhook if found is not None else None
