"""Backoff policy: doubling, capped, jittered into the upper half."""

from __future__ import annotations

import pytest

from executor.run.retry import RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 10.0)]
)
def test_delay_doubles_up_to_the_cap_with_jitter_in_the_upper_half(
    attempt: int, ceiling: float
) -> None:
    policy = RetryPolicy(max_attempts=10, base_s=1.0, max_s=10.0)
    delays = [policy.delay_s(attempt) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100  # jittered, not one fixed value
