"""Claims queued invocations under a lease and runs them within the concurrency limits.

Several executor processes may share one store: each claims with its own ``owner`` id,
renews the leases of what it runs, and re-queues invocations whose lease expired (their
executor died). The dispatcher is woken when events are stored (``wake``) and also polls.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from executor.engine import Engine
from executor.metrics import Metrics
from executor.recovery import reconcile, sweep_orphans
from executor.runner import InvocationRunner
from executor.sandbox import Sandbox
from executor.settings import Settings
from executor.store import gateway as gateway_store
from executor.store import invocations as invocation_store
from executor.store.db import Database
from executor.warm_pool import WarmPool

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    """Who holds a lease: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Dispatcher:
    """Runs queued invocations on a pool of ``max_concurrent_runs`` threads."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        on_logs_written: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_logs_written`` is called after log records or an outcome were committed."""
        self.db = db
        self.engine = engine
        self.settings = settings
        self.owner = new_owner_id()
        self.sandbox = Sandbox(
            engine,
            settings.sandbox,
            settings.resolved_gateway_socket_dir,
            lambda phase, seconds: metrics.start_phases.labels(phase).observe(seconds),
        )
        self.pool = WarmPool(db, self.sandbox, settings)
        self._stopping = threading.Event()
        self._handing_back = threading.Event()
        self.runner = InvocationRunner(
            db,
            self.sandbox,
            self.pool,
            settings,
            metrics,
            self.owner,
            self._handing_back.is_set,
            on_logs_written,
        )
        self.limits = invocation_store.ClaimLimits(
            per_plugin=settings.max_runs_per_plugin,
            per_project=settings.max_runs_per_project,
            per_tenant=settings.tenant_max_concurrent_runs,
        )
        self._pool = ThreadPoolExecutor(settings.max_concurrent_runs, "run")
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._leases_renewed_at = 0.0
        self._swept_at = time.monotonic()

    def start(self) -> None:
        """Reconcile what a previous process left, then start claiming."""
        for invocation, container_id, running in reconcile(
            self.db, self.engine, self.owner, self.settings.lease_s
        ):
            self._submit(invocation.id, self.runner.watch, invocation, container_id, running)
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
        _, not_done = wait(pending, timeout=self.settings.drain_timeout_s)
        if not_done:
            self._hand_back()
        self._pool.shutdown(wait=True)
        self.pool.stop()

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
            self._wakeup.wait(self.settings.dispatch_poll_s)

    def _maintain_leases(self) -> None:
        now = time.monotonic()
        if now - self._leases_renewed_at < self.settings.lease_s / 3:
            return
        self._leases_renewed_at = now
        with self.db.session() as session:
            invocation_store.renew_leases(
                session, self.owner, self.running_ids(), self.settings.lease_s
            )
            requeued = invocation_store.requeue_expired(session)
            for invocation_id in requeued:
                gateway_store.revoke_for(session, invocation_id)
        if requeued:
            log.warning("re-queued %d invocations whose executor stopped", len(requeued))
        if now - self._swept_at >= self.settings.lease_s:
            self._swept_at = now
            sweep_orphans(self.db, self.engine)

    def _claim_available(self) -> None:
        with self._lock:
            slots = self.settings.max_concurrent_runs - len(self._running)
        if slots <= 0 or self._stopping.is_set():
            return
        with self.db.session() as session:
            claimed = invocation_store.claim(
                session, self.owner, slots, self.settings.lease_s, self.limits
            )
        for invocation in claimed:
            self._submit(invocation.id, self.runner.run, invocation)

    def _submit(self, invocation_id: str, fn: Callable[..., None], *args: object) -> None:
        # Submitted under the lock: the job's own removal (which takes the lock) comes after.
        with self._lock:
            self._running[invocation_id] = self._pool.submit(
                self._guarded, invocation_id, fn, *args
            )

    def _guarded(self, invocation_id: str, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("invocation %s: executor error", invocation_id)
        finally:
            with self._lock:
                self._running.pop(invocation_id, None)
            self._wakeup.set()
