"""Retry policy: plugin failures by count, infrastructure failures by time budget, backoff
doubling, capped, jittered into the upper half."""

from __future__ import annotations

import pytest

from executor.run.retry import AttemptSoFar, Finish, Outcome, Requeue, Retry, RetryPolicy, decide
from executor.statuses import AttemptKind, InvocationStatus

POLICY = RetryPolicy(max_attempts=10, base_s=1.0, max_s=10.0, infra_budget_s=600.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]
)
def test_delay_doubles_up_to_the_cap_with_jitter_in_the_upper_half(
    attempt: int, ceiling: float
) -> None:
    assert POLICY.ceiling_s(attempt) == ceiling
    delays = [POLICY.delay_s(attempt) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100  # jittered, not one fixed value


@pytest.mark.parametrize(
    ("attempt", "plugin_failures", "max_retries", "retried"),
    [
        (1, 1, 0, False),  # no retries asked for: the first plugin failure is final
        (1, 1, 2, True),
        (2, 2, 2, True),
        (3, 3, 2, False),  # the third failure with max_retries=2: dead
        # Attempts lost to infrastructure failures do not use up the plugin's retries.
        (9, 1, 1, True),
        (9, 2, 1, False),
    ],
)
def test_plugin_failures_are_retried_by_count(
    attempt: int, plugin_failures: int, max_retries: int, retried: bool
) -> None:
    delay = POLICY.after_plugin_failure(attempt, plugin_failures, max_retries)

    assert (delay is not None) == retried
    if delay is not None:
        assert POLICY.ceiling_s(attempt) / 2 <= delay <= POLICY.ceiling_s(attempt)


@pytest.mark.parametrize(
    ("attempt", "failing_for_s", "retried"),
    [
        (1, 0.0, True),  # the first infrastructure failure
        (5, 15.0, True),  # five attempts in 15 s: a count of 5 would have ended it here
        (40, 599.0, True),  # any number of attempts while the budget lasts
        (3, 600.0, False),  # the budget is spent, however few attempts that took
        (40, 4000.0, False),
    ],
)
def test_infrastructure_failures_are_retried_by_time_budget_not_by_count(
    attempt: int, failing_for_s: float, retried: bool
) -> None:
    delay = POLICY.after_infrastructure_failure(attempt, failing_for_s)

    assert (delay is not None) == retried
    if delay is not None:
        assert POLICY.ceiling_s(attempt) / 2 <= delay <= POLICY.ceiling_s(attempt)


FAILED, TIMED_OUT, OOM, OK, CRASHED, DEAD = (
    InvocationStatus.FAILED,
    InvocationStatus.TIMED_OUT,
    InvocationStatus.OOM_KILLED,
    InvocationStatus.SUCCEEDED,
    InvocationStatus.CRASHED,
    InvocationStatus.DEAD,
)
PLUGIN, INFRA = AttemptKind.PLUGIN, AttemptKind.INFRASTRUCTURE


@pytest.mark.parametrize(
    ("outcome", "attempt", "verdict"),
    [
        # Ended as the attempt did.
        (Outcome(OK), AttemptSoFar(1, 0, 0), Finish(OK)),
        (Outcome(FAILED), AttemptSoFar(1, 0, 0), Finish(FAILED)),
        (Outcome(CRASHED), AttemptSoFar(1, 0, 5), Finish(CRASHED)),  # not a plugin failure
        (Outcome(OK), AttemptSoFar(3, 2, 2), Finish(OK)),  # a retry that worked
        # Plugin failures, counted against max_retries.
        (Outcome(FAILED), AttemptSoFar(1, 0, 1), Retry(PLUGIN, 1.0)),
        (Outcome(TIMED_OUT), AttemptSoFar(2, 1, 2), Retry(PLUGIN, 2.0)),
        (Outcome(OOM), AttemptSoFar(1, 0, 1), Retry(PLUGIN, 1.0)),
        (Outcome(FAILED), AttemptSoFar(2, 1, 1), Finish(DEAD, PLUGIN)),
        (Outcome(FAILED), AttemptSoFar(7, 0, 1), Retry(PLUGIN, 10.0)),  # after infra attempts
        # Infrastructure failures, waited out for the budget whatever the count.
        (Outcome(CRASHED, infrastructure=True), AttemptSoFar(1, 0, 0), Retry(INFRA, 1.0)),
        (
            Outcome(FAILED, infrastructure=True),
            AttemptSoFar(30, 0, 0, infra_failing_for_s=599.0),
            Retry(INFRA, 10.0),
        ),
        (
            Outcome(CRASHED, infrastructure=True),
            AttemptSoFar(4, 0, 9, infra_failing_for_s=600.0),
            Finish(DEAD, INFRA),
        ),
        # A shutdown hands the run back, however it ended.
        (Outcome(OK, handing_back=True), AttemptSoFar(1, 0, 0), Requeue()),
        (Outcome(FAILED, handing_back=True), AttemptSoFar(2, 1, 1), Requeue()),
        (Outcome(CRASHED, True, True), AttemptSoFar(1, 0, 0, 900.0), Requeue()),
    ],
)
def test_decide_what_follows_an_attempt(
    outcome: Outcome, attempt: AttemptSoFar, verdict: Finish | Retry | Requeue
) -> None:
    decided = decide(outcome, attempt, POLICY)

    if isinstance(verdict, Retry):  # the delay is jittered into the upper half of the ceiling
        assert isinstance(decided, Retry) and decided.kind == verdict.kind
        assert verdict.delay_s / 2 <= decided.delay_s <= verdict.delay_s
    else:
        assert decided == verdict
