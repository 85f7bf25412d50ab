"""Retry policy: what follows a failed attempt, and how long to wait before the next one.

Plugin failures (the plugin's own exit or exception) are retried as many times as the
activation's ``max_retries`` allows. Infrastructure failures (the registry, the Docker
Engine or the store failing; a container stopped from outside) are waited out: retried
until ``infra_budget_s`` has passed since the invocation's first one, however many
attempts that takes. Delays double from ``base_s`` to ``max_s``, with jitter.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = ["BUDGET_SETTING", "Infrastructure", "RetryPolicy"]

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
