"""A dispatcher's jobs in flight: plugin runs on a pool of ``max_concurrent_runs`` threads,
webhook deliveries on a pool of ``webhook_pool_size`` threads of their own, where each
tenant holds at most its share. A job that raises ends its run ``crashed`` (or, in a store
outage, waits it out as an infrastructure failure).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from executor.gateway.live import LiveTokens
from executor.settings import Settings
from executor.store import claims as claim_store
from executor.store.db import is_store_outage
from executor.store.tables import Invocation

__all__ = ["CrashRecorder", "Jobs", "error_summary", "tenant_share"]

log = logging.getLogger(__name__)

ERROR_SUMMARY_CHARS = 300


def error_summary(error: BaseException) -> str:
    """``Type: first line of its message``, storable (lone surrogates escaped) and short:
    later lines (SQL parameters, validation inputs) stay in the server log only."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= ERROR_SUMMARY_CHARS else text[: ERROR_SUMMARY_CHARS - 1] + "…"


def tenant_share(settings: Settings) -> int:
    """Webhook deliveries one tenant may have in flight on a node: its share of the webhook
    pool, at least one."""
    return max(1, int(settings.webhooks.pool_size * settings.webhooks.tenant_share))


class CrashRecorder(Protocol):
    """Ends a run whose job raised (the runner)."""

    def store_failed(self, invocation: Invocation, reason: str) -> None: ...

    def crashed(self, invocation: Invocation, reason: str) -> None: ...


class Jobs:
    """Runs jobs and deliveries, ``runner`` recording the runs whose job raised;
    ``on_done`` is called after each job ended (a slot is free)."""

    def __init__(
        self,
        settings: Settings,
        runner: CrashRecorder,
        live: LiveTokens,
        on_done: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.live = live
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(settings.runs.max_concurrent_runs, "run")
        self._webhook_pool = ThreadPoolExecutor(settings.webhooks.pool_size, "webhook")
        self._running: dict[str, Future[None]] = {}
        self._delivering: dict[str, str] = {}  # invocation id -> tenant, in _running too
        self._lock = threading.Lock()

    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def pending(self) -> list[Future[None]]:
        with self._lock:
            return list(self._running.values())

    def free_slots(self) -> tuple[int, claim_store.WebhookSlots]:
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

    def submit(self, fn: Callable[..., None], invocation: Invocation, *args: object) -> None:
        # Submitted under the lock: the job's own removal (which takes the lock) comes after.
        with self._lock:
            self._running[invocation.id] = self._pool.submit(self._guarded, fn, invocation, *args)

    def submit_delivery(
        self, deliver: Callable[..., None], invocation: Invocation, *args: object
    ) -> None:
        with self._lock:
            self._delivering[invocation.id] = invocation.tenant_id
            self._running[invocation.id] = self._webhook_pool.submit(
                self._guarded, deliver, invocation, *args
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self._webhook_pool.shutdown(wait=True)

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
            self.on_done()

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
