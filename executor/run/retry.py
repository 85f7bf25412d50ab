"""Retry policy: exponential backoff with jitter (which failures are retried: statuses.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` for infrastructure failures; delays double from ``base_s`` to ``max_s``."""

    max_attempts: int
    base_s: float
    max_s: float

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based), with jitter:
        a random point in the upper half of the backoff, so retries of many invocations that
        failed together do not all come back at the same instant."""
        ceiling = min(self.base_s * 2.0 ** max(attempt - 1, 0), self.max_s)
        return ceiling * (0.5 + random.random() / 2)
