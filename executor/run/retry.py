"""Retry policy: what follows a failed attempt, and how long to wait before the next one.

Plugin failures (the plugin's own exit or exception) are retried as many times as the
activation's ``max_retries`` allows. Infrastructure failures (the registry, the Docker
Engine or the store failing; a container stopped from outside) are waited out: retried
until ``infra_budget_s`` has passed since the invocation's first one, however many
attempts that takes. Delays double from ``base_s`` to ``max_s``, with jitter.

``decide`` is the whole policy for a run's attempt: from how it ended and what came before,
whether the run finishes (as it ended, or ``dead``), is retried after a delay, or is handed
back at once. It reads nothing and writes nothing: the runner records what it says.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from executor.statuses import PLUGIN_FAILURES, AttemptKind, InvocationStatus

__all__ = [
    "BUDGET_SETTING",
    "AttemptSoFar",
    "Finish",
    "Infrastructure",
    "Outcome",
    "Requeue",
    "Retry",
    "RetryPolicy",
    "decide",
]

BUDGET_SETTING = "EXECUTOR_INFRA_RETRY_BUDGET_S"


class Infrastructure(enum.StrEnum):
    """The part that failed an attempt, as named in messages."""

    REGISTRY = "the registry"
    ENGINE = "the Docker Engine"
    STORE = "the store"
    EXECUTOR = "the executor"


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` bounds what is retried by count (webhook deliveries); delays double
    from ``base_s`` to ``max_s``; ``infra_budget_s`` bounds infrastructure retries."""

    max_attempts: int
    base_s: float
    max_s: float
    infra_budget_s: float = 600.0

    def ceiling_s(self, attempt: int) -> float:
        """The backoff after ``attempt`` (1-based) before jitter: doubling, capped."""
        return min(self.base_s * 2.0 ** max(attempt - 1, 0), self.max_s)

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based), with jitter:
        a random point in the upper half of the backoff, so retries of many invocations that
        failed together do not all come back at the same instant."""
        return self.ceiling_s(attempt) * (0.5 + random.random() / 2)

    def after_plugin_failure(
        self, attempt: int, plugin_failures: int, max_retries: int
    ) -> float | None:
        """The delay before retrying a run whose ``plugin_failures``-th plugin failure (this
        one included) ended ``attempt``; None: its retries are used up."""
        return self.delay_s(attempt) if plugin_failures <= max_retries else None

    def after_infrastructure_failure(self, attempt: int, failing_for_s: float) -> float | None:
        """The delay before retrying a run whose infrastructure failures began
        ``failing_for_s`` ago (0 at the first); None: the budget is spent."""
        return self.delay_s(attempt) if failing_for_s < self.infra_budget_s else None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the executor observed it: ``status`` (terminal), whether
    it failed for something else than the plugin (``infrastructure``), and whether the
    executor is shutting down (``handing_back``)."""

    status: InvocationStatus
    infrastructure: bool = False
    handing_back: bool = False


@dataclass(frozen=True)
class AttemptSoFar:
    """The attempt that ended (``number``, 1-based) and the run's history before it: its
    plugin failures, the activation's ``max_retries``, and for how long infrastructure
    failures have lasted (0 at the first; read only for an infrastructure failure)."""

    number: int
    plugin_failures: int
    max_retries: int
    infra_failing_for_s: float = 0.0


@dataclass(frozen=True)
class Finish:
    """The run ends ``status``; ``gave_up`` names what was retried until it could not be
    any more (``status`` is then ``dead``), None when the run ended as the attempt did."""

    status: InvocationStatus
    gave_up: AttemptKind | None = None


@dataclass(frozen=True)
class Retry:
    """Queue the run again after ``delay_s``; ``kind`` is what failed the attempt."""

    kind: AttemptKind
    delay_s: float


@dataclass(frozen=True)
class Requeue:
    """Hand the run back at once: the executor is shutting down (not counted)."""

    kind: AttemptKind = AttemptKind.HANDED_BACK


def decide(
    outcome: Outcome, attempt: AttemptSoFar, policy: RetryPolicy
) -> Finish | Retry | Requeue:
    """What follows an attempt that ended with ``outcome``."""
    if outcome.handing_back:
        return Requeue()
    if outcome.infrastructure:
        delay = policy.after_infrastructure_failure(attempt.number, attempt.infra_failing_for_s)
        if delay is None:
            return Finish(InvocationStatus.DEAD, AttemptKind.INFRASTRUCTURE)
        return Retry(AttemptKind.INFRASTRUCTURE, delay)
    if outcome.status in PLUGIN_FAILURES and attempt.max_retries > 0:
        failures = attempt.plugin_failures + 1  # this one too
        delay = policy.after_plugin_failure(attempt.number, failures, attempt.max_retries)
        if delay is None:
            return Finish(InvocationStatus.DEAD, AttemptKind.PLUGIN)
        return Retry(AttemptKind.PLUGIN, delay)
    return Finish(outcome.status)
