"""One attempt of one invocation: envelope in, logs out, and what happens next.

After the container ended, the attempt is recorded as terminal, or queued again with
backoff (infrastructure failures, for the time budget of ``executor.run.retry``; plugin
failures when the activation allows retries), or recorded ``dead`` when its retries are
used up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from executor.errors import SandboxError
from executor.gateway.live import LiveTokens
from executor.gateway.policy import PlatformTargets
from executor.gateway.server import CONTAINER_SOCKET_DIR, SOCKET_NAME
from executor.metrics import Metrics
from executor.registry import ImageNotInRegistry, Registry, RegistryError, is_digest_reference
from executor.run.limits import effective_profile
from executor.run.output import STDERR, STDOUT, OutputCollector, OutputLine
from executor.run.retry import (
    BUDGET_SETTING,
    AttemptSoFar,
    Finish,
    Infrastructure,
    Outcome,
    Requeue,
    Retry,
    RetryPolicy,
    decide,
)
from executor.run.sandbox import ImageMissing, RunOutcome, Sandbox, StartedContainer
from executor.run.warm_pool import WarmPool
from executor.schemas.envelope import ApiInfo, Envelope, EnvelopeEvent
from executor.settings import SandboxProfile, Settings
from executor.statuses import AttemptKind, InvocationStatus, RunErrorType
from executor.store import gateway as gateway_store
from executor.store import leases as lease_store
from executor.store import logs as log_store
from executor.store import outcomes as outcome_store
from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.outcomes import RunOutput
from executor.store.run_errors import RunError
from executor.store.tables import Event, Invocation, utcnow
from executor.tokens import hash_token, mint_token

__all__ = ["InvocationRunner", "RunLogWriter", "run_failure"]

log = logging.getLogger(__name__)


def _lease_lost(invocation: Invocation) -> None:
    log.warning(
        "invocation %s attempt %d: lease lost, result not recorded (another node has the run)",
        invocation.id,
        invocation.attempt,
    )


def _failed_part(error: SandboxError) -> Infrastructure:
    """What failed a container's start: the registry (a pull) or the engine."""
    return Infrastructure.REGISTRY if isinstance(error, RegistryError) else Infrastructure.ENGINE


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


@dataclass
class Attempt:
    """What one attempt works with."""

    invocation: Invocation
    writer: RunLogWriter
    collector: OutputCollector
    token_revoked: bool = False
    live: LiveTokens = field(default_factory=LiveTokens)  # the gateway's, when it shares one

    def on_output(self, db: Database) -> Callable[[int, bytes], bool]:
        def sink(stream_id: int, data: bytes) -> bool:
            lines = self.collector.feed(stream_id, data)
            self._revoke_when_handler_finished(db)
            self.writer.write(lines, self.collector.read_bytes)
            self._note_handler_start(db)
            # A run whose lease is lost is stopped: another node runs it now.
            return not self.collector.truncated and not self.writer.lost

        return sink

    def _revoke_when_handler_finished(self, db: Database) -> None:
        """The handler returned: nothing the plugin left running may call the platform."""
        if self.collector.handler_finished_at is not None and not self.token_revoked:
            self.token_revoked = True
            self.live.revoke(self.invocation.id)  # refused from now on, before the store says
            with db.session() as session:
                gateway_store.revoke_for(
                    session, self.invocation.id, self.invocation.lease_generation
                )

    def _note_handler_start(self, db: Database) -> None:
        started = self.collector.handler_started_at
        if started is not None and self.invocation.handler_started_at is None:
            self.invocation.handler_started_at = started
            with db.session() as session:
                outcome_store.mark_handler_started(
                    session, self.invocation.id, self.invocation.lease_generation, started
                )


def _took(invocation: Invocation, now: datetime) -> str:
    """`` in 812 ms``: the run's duration until ``now``, as its row will keep it."""
    if invocation.started_at is None:
        return ""
    return f" in {int((now - invocation.started_at).total_seconds() * 1000)} ms"


def run_failure(outcome: RunOutcome, reported: RunError | None) -> tuple[RunError, str | None]:
    """What the row keeps of a failed attempt, and what its SYSTEM line says of it: the
    exception the runtime ``reported`` when the plugin ended by itself, else the executor's
    own classification (its kills come first: a report then is not why the run ended)."""
    if reported is not None and outcome.error_type == RunErrorType.EXIT_ERROR:
        return reported, reported.summary()
    if outcome.error_type is None:
        return RunError.classified(outcome.status, outcome.error), outcome.error
    return RunError.bounded(outcome.error_type, outcome.error or ""), outcome.error


def _failure(attempt: Attempt, outcome: RunOutcome) -> tuple[RunError, str | None]:
    return run_failure(outcome, attempt.collector.reported_error)


@dataclass(frozen=True)
class _ToRun:
    event: Event
    image: str
    profile: SandboxProfile
    seq: int  # of the run's last log record (earlier attempts')


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
        self.live = live or LiveTokens()
        self.on_logs_written = on_logs_written
        self.sandbox = sandbox
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.handing_back = handing_back
        self.targets = PlatformTargets(settings)
        self.registry = Registry.configured(settings.images)
        self.policy = RetryPolicy(
            settings.runs.retry_max_attempts,
            settings.runs.retry_base_s,
            settings.runs.retry_max_s,
            settings.runs.infra_retry_budget_s,
        )

    def _what_to_run(self, invocation: Invocation) -> _ToRun | None:
        """A claimed attempt's event, image, sandbox profile and last log record; None (the
        run ended crashed) when its version or event is gone."""
        with self.db.session() as session:
            inputs = query_store.run_inputs(session, invocation)
            seq = log_store.last_seq(session, invocation.id)  # one transaction: hot path
            event, version, plugin = inputs.event, inputs.version, inputs.plugin
            # The plugin's own limits, tightened from the operator's (executor.run.limits).
            profile = effective_profile(self.settings.sandbox, plugin.limits if plugin else None)
            if inputs.runtime:  # the activation's: the claim made sure this node has it
                profile = profile.model_copy(update={"oci_runtime": inputs.runtime})
        image = version.run_image if version is not None else None
        if event is None or image is None:
            self._finish(
                invocation, InvocationStatus.CRASHED, None, "the plugin version or event is gone"
            )
            return None
        return _ToRun(event, image, profile, seq)

    def run(self, invocation: Invocation) -> None:
        """Run one claimed attempt in a warm or a fresh container; record what follows."""
        found = self._what_to_run(invocation)
        if found is None:
            return
        event, image, profile = found.event, found.image, found.profile
        if invocation.started_at is not None:
            self._phase("claim", invocation.queued_at, invocation.started_at)
        try:
            started, warm = self._container(invocation, image, profile)
        except (ImageNotInRegistry, ImageMissing) as exc:  # trying again cannot help
            self._image_gone(self._attempt(invocation, event, profile, seq=found.seq), exc.message)
            return
        except SandboxError as exc:
            attempt = self._attempt(invocation, event, profile, seq=found.seq)
            self._infrastructure_failure(attempt, exc.message, _failed_part(exc))
            return
        handed_off = False
        try:
            # The token and the deadline begin at hand-off, whether the container is warm.
            preparing = utcnow()
            token = mint_token()
            deadline = self._hand_off_begins(invocation, token, profile, warm)
            if deadline is None:
                log.warning("invocation %s: lease lost before the hand-off", invocation.id)
                return
            attempt = self._attempt(invocation, event, profile, seq=found.seq)
            envelope = self._envelope(invocation, event, token, deadline)
            data = envelope.model_dump_json().encode()
            if len(data) > profile.envelope_cap_bytes:
                self._envelope_too_large(attempt, len(data), profile)
                return
            handed_off = True
            handed_off_at = self._phase("token", preparing)
            outcome = self.sandbox.hand_off(
                started, data, invocation.id, attempt.on_output(self.db)
            )
        except SandboxError as exc:
            self._infrastructure_failure(attempt, exc.message, Infrastructure.ENGINE)
            return
        finally:
            if not handed_off:  # a container that gets no envelope is not left waiting
                self.sandbox.discard(started)
            self._container_ended(invocation)
        if attempt.collector.handler_started_at is not None:
            self._phase("handler", handed_off_at, attempt.collector.handler_started_at)
        self.conclude(attempt, outcome)

    def _container_ended(self, invocation: Invocation) -> None:
        """The token never outlives the container, whatever happens next; the records of
        the calls it made are written before the run's end is."""
        self.live.revoke(invocation.id)
        if not self.live.settle(invocation.id):
            log.warning("invocation %s: gateway call records still pending", invocation.id)
        with self.db.session() as session:
            gateway_store.revoke_for(session, invocation.id, invocation.lease_generation)
        self.live.forget(invocation.id)  # the store refuses it now

    def _phase(self, name: str, since: datetime, until: datetime | None = None) -> datetime:
        """Observe how long a start phase took; returns its end."""
        end = until or utcnow()
        self.metrics.start_phases.labels(name).observe(max((end - since).total_seconds(), 0.0))
        return end

    def _container(
        self, invocation: Invocation, image: str, profile: SandboxProfile
    ) -> tuple[StartedContainer, bool]:
        """A warm container from the pool, else a fresh one; and whether it was warm."""
        warm = self.pool.take(invocation.version_id, image, profile)
        self.metrics.starts.labels("warm" if warm else "cold").inc()
        if warm is not None:
            return warm, True
        generation = invocation.lease_generation
        try:
            started = self.sandbox.start(
                image, profile, invocation_id=invocation.id, generation=generation
            )
            return started, False
        except ImageMissing:
            # First use of a pushed version on this engine: pull it by digest, once.
            if self.registry is None or not is_digest_reference(image):
                raise
            self.registry.pull(self.sandbox.engine, image)
        started = self.sandbox.start(
            image, profile, invocation_id=invocation.id, generation=generation
        )
        return started, False

    def _hand_off_begins(
        self, invocation: Invocation, token: str, profile: SandboxProfile, warm: bool
    ) -> datetime | None:
        """Record the deadline, the start kind and the token; returns the deadline (None:
        the lease was lost, nothing recorded)."""
        deadline = utcnow() + timedelta(seconds=profile.timeout_s)
        invocation.cold_start = not warm
        generation = invocation.lease_generation
        with self.db.session() as session:
            if not outcome_store.begin_hand_off(
                session, invocation.id, generation, deadline, cold_start=not warm
            ):
                return None
            gateway_store.add_token(
                session,
                hash_token(token),
                invocation.id,
                invocation.project_id,
                deadline,
                generation,
            )
        self.live.grant(
            hash_token(token), invocation.id, invocation.project_id, generation, deadline
        )
        return deadline

    def watch(self, invocation: Invocation, container_id: str, running: bool) -> None:
        """Follow (or just read the end of) a container an earlier process started; the
        output it wrote since the last stored record is read back from the engine."""
        with self.db.session() as session:
            event = query_store.find_event(session, invocation.event_id)
        stored = {STDOUT: invocation.stdout_read_bytes, STDERR: invocation.stderr_read_bytes}
        attempt = self._attempt(invocation, event, resume_at=stored)
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
            self._infrastructure_failure(attempt, exc.message, Infrastructure.ENGINE)
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
            self.conclude(attempt, outcome, Infrastructure.EXECUTOR)
            return
        self.conclude(attempt, outcome)

    def _image_gone(self, attempt: Attempt, message: str) -> None:
        attempt.writer.system(message)
        self._finish(attempt.invocation, InvocationStatus.CRASHED, None, message, reason=message)

    def _envelope_too_large(self, attempt: Attempt, size: int, profile: SandboxProfile) -> None:
        message = (
            f"envelope_too_large: the event makes an envelope of {size} bytes, over the cap of "
            f"{profile.envelope_cap_bytes} bytes; send a smaller label or payload"
        )
        attempt.writer.system(message)
        failure = RunError(RunErrorType.ENVELOPE_TOO_LARGE, message)
        self._finish(attempt.invocation, InvocationStatus.FAILED, None, message, failure=failure)

    def _attempt(
        self,
        invocation: Invocation,
        event: Event | None,
        profile: SandboxProfile | None = None,
        resume_at: Mapping[int, int] | None = None,
        seq: int | None = None,
    ) -> Attempt:
        label = event.label if event is not None else None
        label_id = label.get("id") if isinstance(label, dict) else None
        writer = RunLogWriter(
            self.db, invocation, str(label_id) if label_id else None, self.on_logs_written, seq
        )
        if invocation.attempt > 1 and invocation.attempts:
            previous = invocation.attempts[-1]["reason"]
            writer.system(f"attempt {invocation.attempt} (previous attempt: {previous})")
        cap = (profile or self.settings.sandbox).log_cap_bytes
        collector = OutputCollector(cap, resume_at or {})
        return Attempt(invocation, writer, collector, live=self.live)

    def _envelope(
        self, invocation: Invocation, event: Event, token: str, deadline: datetime
    ) -> Envelope:
        return Envelope(
            invocation_id=invocation.id,
            plugin=invocation.plugin_name,
            version=invocation.version_number,
            project_id=invocation.project_id,
            event=EnvelopeEvent(
                type=event.type, asset_id=event.asset_id, label=event.label, payload=event.payload
            ),
            api=ApiInfo(
                url=self.targets.plugin_url(invocation.project_id),
                token=token,
                socket=f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}",
            ),
            deadline=deadline.astimezone(UTC),
        )

    def conclude(
        self, attempt: Attempt, outcome: RunOutcome, part: Infrastructure = Infrastructure.ENGINE
    ) -> None:
        """Record a finished container's result, or queue the invocation again; ``part``
        is what failed when the outcome is an infrastructure failure (by default the
        engine: the container was stopped from outside)."""
        attempt.writer.write(attempt.collector.close(), attempt.collector.read_bytes)
        collector = attempt.collector
        if collector.truncated:
            attempt.writer.system(
                f"log output truncated at {collector.cap_bytes} bytes: "
                f"{collector.dropped_bytes} more bytes were dropped"
            )
        self._settle(attempt, outcome, part)

    def _infrastructure_failure(self, attempt: Attempt, reason: str, part: Infrastructure) -> None:
        """An attempt that ended in an engine, registry or store error, before or instead
        of the container's end."""
        outcome = RunOutcome(InvocationStatus.CRASHED, None, reason, 0.0, infrastructure=True)
        self._settle(attempt, outcome, part)

    def _settle(self, attempt: Attempt, outcome: RunOutcome, part: Infrastructure) -> None:
        """Record what ``decide`` says follows ``outcome``: infrastructure failures are
        waited out for the budget since the run's first one, plugin failures retried while
        the activation's ``max_retries`` allows, a shutdown hands the run back."""
        invocation = attempt.invocation
        handing_back = self.handing_back()
        failing_for_s = 0.0
        if outcome.infrastructure and not handing_back:
            with self.db.session() as session:
                failing = outcome_store.infrastructure_failing(
                    session, invocation.id, invocation.lease_generation
                )
            if failing is None:
                _lease_lost(invocation)
                return
            failing_for_s = failing.for_s
        verdict = decide(
            Outcome(outcome.status, outcome.infrastructure, handing_back),
            AttemptSoFar(
                invocation.attempt,
                outcome_store.plugin_failures(invocation),
                invocation.max_retries,
                failing_for_s,
            ),
            self.policy,
        )
        if isinstance(verdict, Requeue):
            attempt.writer.system("the executor is shutting down: the run is handed back")
            self._requeue(invocation, "handed back at executor shutdown", 0.0, verdict.kind)
        elif outcome.infrastructure:
            self._infrastructure_verdict(attempt, verdict, outcome.error or "", part, failing_for_s)
        elif isinstance(verdict, Finish) and verdict.gave_up is None:  # ended as it did
            self._ended(attempt, outcome)
        else:
            self._plugin_verdict(attempt, verdict, outcome)

    def _ended(self, attempt: Attempt, outcome: RunOutcome) -> None:
        """Record an attempt's outcome as the run's end, with its SYSTEM line: how long a
        success took, why a failure failed."""
        collector = attempt.collector
        output = RunOutput(collector.total_bytes, collector.truncated or outcome.output_lost)
        if outcome.status == InvocationStatus.SUCCEEDED:
            # The line and the row name one end time (the line's duration is the row's) and
            # are stored in one transaction: a success costs no commit of its own for it.
            invocation, now = attempt.invocation, utcnow()
            ended = f"run ended {outcome.status}{_took(invocation, now)}"
            last = attempt.writer.records([OutputLine("SYSTEM", ended, "system")])
            status, exit_code = outcome.status, outcome.exit_code
            self._finish(invocation, status, exit_code, None, output=output, at=now, last=last)
            return
        failure, said = _failure(attempt, outcome)
        if said:
            attempt.writer.system(f"run ended {outcome.status}: {said}")
        self._finish(
            attempt.invocation,
            outcome.status,
            outcome.exit_code,
            outcome.error,
            output=output,
            failure=failure,
        )

    def _plugin_verdict(
        self, attempt: Attempt, verdict: Finish | Retry, outcome: RunOutcome
    ) -> None:
        invocation = attempt.invocation
        reason = f"{outcome.status}: {outcome.error}"
        if isinstance(verdict, Retry):
            attempt.writer.system(f"{reason}; retrying in {verdict.delay_s:.1f} s")
            self._requeue(invocation, reason, verdict.delay_s, verdict.kind)
            return
        failure, said = _failure(attempt, outcome)
        attempt.writer.system(f"run ended {outcome.status}: {said}; no retries left")
        self._finish(
            invocation,
            verdict.status,
            outcome.exit_code,
            f"gave up after {invocation.attempt} attempts: {reason}",
            reason=reason,
            kind=AttemptKind.PLUGIN,
            failure=failure,
        )

    def _infrastructure_verdict(
        self,
        attempt: Attempt,
        verdict: Finish | Retry,
        reason: str,
        part: Infrastructure,
        failing_for_s: float,
    ) -> None:
        invocation = attempt.invocation
        budget = self.policy.infra_budget_s
        if isinstance(verdict, Retry):
            attempt.writer.system(
                f"infrastructure: {reason}; retrying in {verdict.delay_s:.1f} s (infrastructure "
                f"failures for {failing_for_s:.0f} s of the {budget:g} s budget, {BUDGET_SETTING})"
            )
            self._requeue(invocation, f"infrastructure: {reason}", verdict.delay_s, verdict.kind)
            return
        attempt.writer.system(
            f"the executor could not run the plugin: {reason}; infrastructure failures for "
            f"{failing_for_s:.0f} s used up the {budget:g} s budget; giving up"
        )
        error = (
            f"gave up after {invocation.attempt} attempts over {failing_for_s:.0f} s of "
            f"infrastructure failures, the last of {part}: {reason}; infrastructure failures "
            f"are retried for {BUDGET_SETTING} ({budget:g} s) from the first: raise it to "
            "wait out longer outages"
        )
        self._finish(
            invocation,
            verdict.status,
            None,
            error,
            reason=f"infrastructure: {reason}",
            kind=AttemptKind.INFRASTRUCTURE,
            failure=RunError(RunErrorType.INFRASTRUCTURE, error),
        )

    def _requeue(
        self, invocation: Invocation, reason: str, delay_s: float, kind: AttemptKind
    ) -> None:
        generation = invocation.lease_generation
        self.live.revoke(invocation.id)
        with self.db.session() as session:  # row, then tokens: see _finish
            queued = outcome_store.retry_later(
                session, invocation.id, generation, reason, delay_s, kind
            )
            gateway_store.revoke_for(session, invocation.id, generation)
        if not queued:
            _lease_lost(invocation)

    def store_failed(self, invocation: Invocation, reason: str) -> None:
        """A store error interrupted the attempt: an infrastructure failure, retried for
        the budget once the store answers (while it does not, this raises; the lease then
        expires and the run is re-queued)."""
        writer = RunLogWriter(self.db, invocation, None, self.on_logs_written)
        collector = OutputCollector(self.settings.sandbox.log_cap_bytes, {})
        self._infrastructure_failure(
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
        self._finish(invocation, InvocationStatus.CRASHED, None, reason, reason=reason)

    def _finish(
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
            _lease_lost(invocation)
            return
        self.metrics.run_finished(row.tenant_id, row.plugin_name, status)
        duration = row.duration_ms / 1000 if row.duration_ms is not None else None
        latency = None
        if row.handler_started_at is not None:
            latency = max((row.handler_started_at - row.queued_at).total_seconds(), 0.0)
        self.metrics.run_timed(row.tenant_id, row.plugin_name, duration, latency)
