"""What follows an attempt's end, as ``decide`` (``executor.run.retry``) says: the run
finishes (as it ended, or ``dead`` once its retries are used up), is queued again with
backoff (infrastructure failures, for the time budget since the run's first one; plugin
failures, when the activation allows retries), or is handed back at a shutdown. Each is
recorded (``executor.run.ending``) with the SYSTEM line that says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from executor.run.attempt import Attempt
from executor.run.ending import RunEnding, lease_lost
from executor.run.exit_cause import RunOutcome
from executor.run.output import OutputLine
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
from executor.settings import SandboxProfile
from executor.statuses import AttemptKind, InvocationStatus, RunErrorType
from executor.store import outcomes as outcome_store
from executor.store.db import Database
from executor.store.outcomes import RunOutput
from executor.store.run_errors import RunError
from executor.store.tables import Invocation, utcnow

__all__ = ["OutcomeStep", "run_failure"]


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
class _Failing:
    """An infrastructure failure's verdict and what it is told from."""

    reason: str
    part: Infrastructure  # what failed
    for_s: float  # since the run's first infrastructure failure
    budget_s: float


class OutcomeStep:
    """Records what follows each attempt's end; ``handing_back()`` is True once the
    executor is shutting down and hands its runs back."""

    def __init__(
        self,
        db: Database,
        ending: RunEnding,
        policy: RetryPolicy,
        handing_back: Callable[[], bool],
    ) -> None:
        self.db = db
        self.ending = ending
        self.policy = policy
        self.handing_back = handing_back

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

    def infrastructure_failure(self, attempt: Attempt, reason: str, part: Infrastructure) -> None:
        """An attempt that ended in an engine, registry or store error, before or instead
        of the container's end."""
        outcome = RunOutcome(InvocationStatus.CRASHED, None, reason, 0.0, infrastructure=True)
        self._settle(attempt, outcome, part)

    def image_gone(self, attempt: Attempt, message: str) -> None:
        """The run's image is neither on the engine nor in the registry: trying again
        cannot help."""
        attempt.writer.system(message)
        self.ending.finish(
            attempt.invocation, InvocationStatus.CRASHED, None, message, reason=message
        )

    def envelope_too_large(self, attempt: Attempt, size: int, profile: SandboxProfile) -> None:
        message = (
            f"envelope_too_large: the event makes an envelope of {size} bytes, over the cap of "
            f"{profile.envelope_cap_bytes} bytes; send a smaller label or payload"
        )
        attempt.writer.system(message)
        failure = RunError(RunErrorType.ENVELOPE_TOO_LARGE, message)
        self.ending.finish(
            attempt.invocation, InvocationStatus.FAILED, None, message, failure=failure
        )

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
                lease_lost(invocation)
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
            self.ending.requeue(invocation, "handed back at executor shutdown", 0.0, verdict.kind)
        elif outcome.infrastructure:
            budget_s = self.policy.infra_budget_s
            failing_now = _Failing(outcome.error or "", part, failing_for_s, budget_s)
            _infrastructure_verdict(self.ending, attempt, verdict, failing_now)
        elif isinstance(verdict, Finish) and verdict.gave_up is None:  # ended as it did
            _ended(self.ending, attempt, outcome)
        else:
            _plugin_verdict(self.ending, attempt, verdict, outcome)


def _ended(ending: RunEnding, attempt: Attempt, outcome: RunOutcome) -> None:
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
        ending.finish(invocation, status, exit_code, None, output=output, at=now, last=last)
        return
    failure, said = _failure(attempt, outcome)
    if said:
        attempt.writer.system(f"run ended {outcome.status}: {said}")
    ending.finish(
        attempt.invocation,
        outcome.status,
        outcome.exit_code,
        outcome.error,
        output=output,
        failure=failure,
    )


def _plugin_verdict(
    ending: RunEnding, attempt: Attempt, verdict: Finish | Retry, outcome: RunOutcome
) -> None:
    invocation = attempt.invocation
    reason = f"{outcome.status}: {outcome.error}"
    if isinstance(verdict, Retry):
        attempt.writer.system(f"{reason}; retrying in {verdict.delay_s:.1f} s")
        ending.requeue(invocation, reason, verdict.delay_s, verdict.kind)
        return
    failure, said = _failure(attempt, outcome)
    attempt.writer.system(f"run ended {outcome.status}: {said}; no retries left")
    ending.finish(
        invocation,
        verdict.status,
        outcome.exit_code,
        f"gave up after {invocation.attempt} attempts: {reason}",
        reason=reason,
        kind=AttemptKind.PLUGIN,
        failure=failure,
    )


def _infrastructure_verdict(
    ending: RunEnding, attempt: Attempt, verdict: Finish | Retry, failing: _Failing
) -> None:
    invocation, reason, budget = attempt.invocation, failing.reason, failing.budget_s
    if isinstance(verdict, Retry):
        attempt.writer.system(
            f"infrastructure: {reason}; retrying in {verdict.delay_s:.1f} s (infrastructure "
            f"failures for {failing.for_s:.0f} s of the {budget:g} s budget, {BUDGET_SETTING})"
        )
        ending.requeue(invocation, f"infrastructure: {reason}", verdict.delay_s, verdict.kind)
        return
    attempt.writer.system(
        f"the executor could not run the plugin: {reason}; infrastructure failures for "
        f"{failing.for_s:.0f} s used up the {budget:g} s budget; giving up"
    )
    error = (
        f"gave up after {invocation.attempt} attempts over {failing.for_s:.0f} s of "
        f"infrastructure failures, the last of {failing.part}: {reason}; infrastructure "
        f"failures are retried for {BUDGET_SETTING} ({budget:g} s) from the first: raise it "
        "to wait out longer outages"
    )
    ending.finish(
        invocation,
        verdict.status,
        None,
        error,
        reason=f"infrastructure: {reason}",
        kind=AttemptKind.INFRASTRUCTURE,
        failure=RunError(RunErrorType.INFRASTRUCTURE, error),
    )
