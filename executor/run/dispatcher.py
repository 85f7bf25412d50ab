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
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from executor.engine import Engine
from executor.gateway.live import LiveTokens
from executor.metrics import Metrics
from executor.run.node import NodeMembership
from executor.run.recovery import reconcile, sweep_orphans
from executor.run.runner import InvocationRunner
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.run.webhook import WebhookDeliverer
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.store import claims as claim_store
from executor.store import gateway as gateway_store
from executor.store import leases as lease_store
from executor.store import outcomes as outcome_store
from executor.store import webhooks as webhook_store
from executor.store.db import Database, is_store_outage
from executor.store.tables import Invocation, Webhook

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


ERROR_SUMMARY_CHARS = 300


def error_summary(error: BaseException) -> str:
    """``Type: first line of its message``, storable (lone surrogates escaped) and short:
    later lines (SQL parameters, validation inputs) stay in the server log only."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= ERROR_SUMMARY_CHARS else text[: ERROR_SUMMARY_CHARS - 1] + "…"


def new_owner_id() -> str:
    """Who holds a lease: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def tenant_share(settings: Settings) -> int:
    """Webhook deliveries one tenant may have in flight on a node: its share of the webhook
    pool, at least one."""
    return max(1, int(settings.webhooks.pool_size * settings.webhooks.tenant_share))


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
        self._stopping = threading.Event()
        self._handing_back = threading.Event()
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
        self._pool = ThreadPoolExecutor(settings.runs.max_concurrent_runs, "run")
        self._webhook_pool = ThreadPoolExecutor(settings.webhooks.pool_size, "webhook")
        self._running: dict[str, Future[None]] = {}
        self._delivering: dict[str, str] = {}  # invocation id -> tenant, in _running too
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._leases_renewed_at = 0.0
        self._swept_at = time.monotonic()

    def start(self) -> None:
        """Join as a node, reconcile what this node's previous process left, then start
        claiming."""
        claim = self.node.join()
        for invocation, container_id, running in reconcile(
            self.db, self.engine, self.owner, self.settings.runs.lease_s, claim.node_id
        ):
            self._submit(self.runner.watch, invocation, container_id, running)
        self.pool.start()
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New work was queued: look at the queue now rather than at the next poll."""
        self._wakeup.set()

    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def stop(self) -> None:
        """Drain: claim nothing more, let running invocations finish for up to
        ``drain_timeout_s``, then kill what is left and hand it back to the queue; empty
        the warm pools."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            pending = list(self._running.values())
        _, not_done = wait(pending, timeout=self.settings.runs.drain_timeout_s)
        if not_done:
            self._hand_back()
        self._pool.shutdown(wait=True)
        self._webhook_pool.shutdown(wait=True)
        self.pool.stop()
        self.deliverer.close()

    def _hand_back(self) -> None:
        self._handing_back.set()
        self.sandbox.kill_serving(set(self.running_ids()))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                self._maintain_leases()
                self._claim_available()
            except Exception:
                log.exception("dispatcher loop error; retrying at the next poll")
            self._wakeup.wait(self.settings.runs.dispatch_poll_s)

    def _maintain_leases(self) -> None:
        now = time.monotonic()
        if now - self._leases_renewed_at < self.settings.runs.lease_s / 3:
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
        self._leases_renewed_at = now
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

    def _free_slots(self) -> tuple[int, claim_store.WebhookSlots]:
        """Free plugin run slots, and free webhook slots with what each tenant holds."""
        with self._lock:
            runs = len(self._running) - len(self._delivering)
            held = Counter(self._delivering.values())
        webhooks = claim_store.WebhookSlots(
            free=self.settings.webhooks.pool_size - sum(held.values()),
            per_tenant=tenant_share(self.settings),
            held=held,
        )
        return self.settings.runs.max_concurrent_runs - runs, webhooks

    def _claim_available(self) -> None:
        slots, webhook_slots = self._free_slots()
        if slots <= 0 and webhook_slots.free <= 0:
            return
        if self._stopping.is_set() or not self.node.takes_runs:
            return
        assert self.node.claim is not None  # joined at start
        sent_at = time.monotonic()  # a lease it takes expires lease_s after, at the earliest
        with self.db.session() as session:
            claimed = claim_store.claim(
                session,
                self.owner,
                slots,
                self.settings.runs.lease_s,
                self.limits,
                self.node.claim,
                self.settings.warm_pool.placement_grace_s,
                webhooks=webhook_slots,
            )
            # A webhook's invocations go to the deliverer, not to a container.
            webhooks = webhook_store.webhooks_for(session, [i.version_id for i in claimed])
        self.live.lease([i.id for i in claimed], sent_at + self.settings.runs.lease_s)
        for invocation in claimed:
            webhook = webhooks.get(invocation.version_id)
            if webhook is None:
                self._submit(self.runner.run, invocation)
            else:
                self._submit_delivery(invocation, webhook)

    def _submit(self, fn: Callable[..., None], invocation: Invocation, *args: object) -> None:
        # Submitted under the lock: the job's own removal (which takes the lock) comes after.
        with self._lock:
            self._running[invocation.id] = self._pool.submit(self._guarded, fn, invocation, *args)

    def _submit_delivery(self, invocation: Invocation, webhook: Webhook) -> None:
        with self._lock:
            self._delivering[invocation.id] = invocation.tenant_id
            self._running[invocation.id] = self._webhook_pool.submit(
                self._guarded, self.deliverer.deliver, invocation, webhook
            )

    def _guarded(self, fn: Callable[..., None], invocation: Invocation, *args: object) -> None:
        try:
            fn(invocation, *args)
        except Exception as exc:
            log.exception("invocation %s: executor error", invocation.id)
            self._crashed(invocation, exc)
        finally:
            self.live.release(invocation.id)
            with self._lock:
                self._running.pop(invocation.id, None)
                self._delivering.pop(invocation.id, None)
            self._wakeup.set()

    def _crashed(self, invocation: Invocation, error: Exception) -> None:
        try:
            if is_store_outage(error):  # an outage, waited out like the engine's
                self.runner.store_failed(invocation, f"store error: {error_summary(error)}")
                return
            self.runner.crashed(invocation, f"executor error: {error_summary(error)}")
        except Exception:
            # Left running: once this process stops renewing its lease, lease expiry
            # re-queues it or, at its last attempt, ends it dead.
            log.exception("invocation %s: could not record the executor error", invocation.id)
