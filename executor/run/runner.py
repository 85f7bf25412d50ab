"""Runs one claimed attempt of one invocation: its container and hand-off
(``executor.run.attempt``), then what follows its end (``executor.run.outcome``: finish,
retry or hand back). Also adopts a container an earlier process left running (``watch``)
and ends runs the executor itself failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from executor.engine import ImageMissing
from executor.errors import SandboxError
from executor.gateway.live import LiveTokens
from executor.metrics import Metrics
from executor.registry import ImageNotInRegistry
from executor.run.attempt import Attempt, AttemptStarter, failed_part, what_to_run
from executor.run.ending import RunEnding
from executor.run.log_writer import RunLogWriter
from executor.run.outcome import OutcomeStep
from executor.run.output import STDERR, STDOUT, OutputCollector
from executor.run.retry import Infrastructure, RetryPolicy
from executor.run.sandbox import Sandbox
from executor.run.warm_pool import WarmPool
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.tables import Invocation, utcnow
from executor.tokens import mint_token

__all__ = ["InvocationRunner"]

log = logging.getLogger(__name__)


def _committed(claimed: threading.Event | None) -> None:
    """Wait for the run's claim to have committed (or failed: its fenced writes then
    match nothing)."""
    if claimed is not None:
        claimed.wait()


class InvocationRunner:
    """Runs attempts under the lease generation each claimed invocation carries, in
    containers from ``pool`` when it has one ready."""

    def __init__(
        self,
        db: Database,
        sandbox: Sandbox,
        pool: WarmPool,
        settings: Settings,
        metrics: Metrics,
        handing_back: Callable[[], bool],
        on_logs_written: Callable[[], None] = lambda: None,
        live: LiveTokens | None = None,
    ) -> None:
        """``on_logs_written`` is called after log records or an outcome were committed;
        ``live`` holds the tokens this runner mints for the gateway of this process."""
        self.db = db
        self.sandbox = sandbox
        self.settings = settings
        self.on_logs_written = on_logs_written
        live = live or LiveTokens()
        self.starter = AttemptStarter(db, sandbox, pool, settings, metrics, live, on_logs_written)
        self.ending = RunEnding(db, live, metrics, on_logs_written)
        policy = RetryPolicy(
            settings.runs.retry_max_attempts,
            settings.runs.retry_base_s,
            settings.runs.retry_max_s,
            settings.runs.infra_retry_budget_s,
        )
        self.outcome = OutcomeStep(db, self.ending, policy, handing_back)

    def run(
        self,
        invocation: Invocation,
        inputs: query_store.RunInputs | None = None,
        claimed: threading.Event | None = None,
    ) -> None:
        """Run one claimed attempt in a warm or a fresh container; record what follows.
        ``inputs``: what it runs, when its claim read them; ``claimed``: set once the claim's
        transaction ended, when the run started before it (``Dispatcher``). Taking a
        container and minting the token write nothing. The hand-off, the first write of a
        run that starts, locks the run's row and so waits for the claim itself
        (``outcome_store.hand_off``); the end of a run that cannot start waits for
        ``claimed`` first, so neither is tested against the row as it was before the
        claim."""
        found = what_to_run(self.db, self.settings.sandbox, invocation, inputs)
        if found is None:
            _committed(claimed)
            message = "the plugin version or event is gone"
            self.ending.finish(invocation, InvocationStatus.CRASHED, None, message)
            return
        starter = self.starter
        event, image, profile = found.event, found.image, found.profile
        if invocation.started_at is not None:
            starter.phase("claim", invocation.queued_at, invocation.started_at)
        try:
            started, warm = starter.container(invocation, image, profile)
        except (ImageNotInRegistry, ImageMissing) as exc:  # trying again cannot help
            _committed(claimed)
            attempt = starter.open(invocation, event, profile, seq=found.seq)
            self.outcome.image_gone(attempt, exc.message)
            return
        except SandboxError as exc:
            _committed(claimed)
            attempt = starter.open(invocation, event, profile, seq=found.seq)
            self.outcome.infrastructure_failure(attempt, exc.message, failed_part(exc))
            return
        handed_off = False
        try:
            # The token and the deadline begin at hand-off, whether the container is warm.
            preparing = utcnow()
            token = mint_token()
            deadline = starter.begin_hand_off(invocation, token, profile, warm)
            if deadline is None:
                log.warning("invocation %s: lease lost before the hand-off", invocation.id)
                return
            attempt = starter.open(invocation, event, profile, seq=found.seq, pooled=True)
            envelope = starter.envelope(invocation, event, token, deadline)
            data = envelope.wire()
            if len(data) > profile.envelope_cap_bytes:
                self.outcome.envelope_too_large(attempt, len(data), profile)
                return
            handed_off = True
            handed_off_at = starter.phase("token", preparing)
            outcome = self.sandbox.hand_off(
                started, data, invocation.id, attempt.on_output(self.db)
            )
        except SandboxError as exc:
            self.outcome.infrastructure_failure(attempt, exc.message, Infrastructure.ENGINE)
            return
        finally:
            if not handed_off:  # a container that gets no envelope is not left waiting
                self.sandbox.discard(started)
            starter.container_ended(invocation, pooled=True)
        if attempt.collector.handler_started_at is not None:
            starter.phase("handler", handed_off_at, attempt.collector.handler_started_at)
        self.outcome.conclude(attempt, outcome)

    def watch(self, invocation: Invocation, container_id: str, running: bool) -> None:
        """Follow (or just read the end of) a container an earlier process started; the
        output it wrote since the last stored record is read back from the engine."""
        with self.db.session() as session:
            event = query_store.find_event(session, invocation.event_id)
        stored = {STDOUT: invocation.stdout_read_bytes, STDERR: invocation.stderr_read_bytes}
        attempt = self.starter.open(invocation, event, resume_at=stored)
        attempt.writer.system(
            "the executor restarted during this run: the output written meanwhile is read "
            "back from the Docker Engine's copy"
        )
        deadline = invocation.deadline_at or utcnow()
        remaining = (deadline - utcnow()).total_seconds() if running else 0.0
        try:
            outcome = self.sandbox.watch(
                container_id, invocation.id, remaining, attempt.on_output(self.db), running=running
            )
        except SandboxError as exc:
            self.outcome.infrastructure_failure(attempt, exc.message, Infrastructure.ENGINE)
            return
        if outcome.output_lost:
            attempt.writer.system(
                "while no executor read it the plugin wrote more output than the Docker "
                "Engine keeps: what it wrote after the last stored line is lost"
            )
        if outcome.status != InvocationStatus.SUCCEEDED and invocation.handler_started_at is None:
            # The previous process may have died before the envelope was written: the
            # plugin never got its event, which is not the plugin's failure.
            outcome = replace(
                outcome,
                infrastructure=True,
                error="the executor stopped before the plugin received its event",
            )
            self.outcome.conclude(attempt, outcome, Infrastructure.EXECUTOR)
            return
        self.outcome.conclude(attempt, outcome)

    def store_failed(self, invocation: Invocation, reason: str) -> None:
        """A store error interrupted the attempt: an infrastructure failure, retried for
        the budget once the store answers (while it does not, this raises; the lease then
        expires and the run is re-queued)."""
        writer = RunLogWriter(self.db, invocation, None, self.on_logs_written)
        collector = OutputCollector(self.settings.sandbox.log_cap_bytes, {})
        self.outcome.infrastructure_failure(
            Attempt(invocation, writer, collector), reason, Infrastructure.STORE
        )

    def crashed(self, invocation: Invocation, reason: str) -> None:
        """End ``crashed`` a run the executor itself failed (an unexpected exception), with
        ``reason``. Not retried: an error in the executor's own code comes back on every
        attempt, and the plugin may already have acted."""
        try:
            RunLogWriter(self.db, invocation, None, self.on_logs_written).system(
                f"{reason}; the run ends crashed"
            )
        except Exception:  # the run ends even if its log cannot be written
            log.exception("invocation %s: could not write its last log line", invocation.id)
        self.ending.finish(invocation, InvocationStatus.CRASHED, None, reason, reason=reason)
