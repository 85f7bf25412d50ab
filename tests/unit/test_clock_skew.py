"""A node's clock skew is measured only from a read with a short round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from executor.run.node import _clock_skew

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_skew_is_taken_against_the_middle_of_the_round_trip() -> None:
    database = T0 - timedelta(seconds=600)  # the host is ten minutes ahead
    assert _clock_skew(T0, database, T0 + timedelta(seconds=0.2), 5.0) == 600.1
    behind = T0 + timedelta(seconds=600)
    assert _clock_skew(T0, behind, T0 + timedelta(seconds=0.2), 5.0) == -599.9


def test_a_read_that_waited_out_a_partition_measures_nothing() -> None:
    # Sent before the cut, answered at the heal 16 s later: the middle of the round trip is
    # 8 s from either end, so the reading cannot tell a skew of 8 s from none at all.
    database = T0 + timedelta(seconds=15.9)
    assert _clock_skew(T0, database, T0 + timedelta(seconds=16), 5.0) is None
    # Just within the tolerance it is still measured.
    assert _clock_skew(T0, T0 + timedelta(seconds=5), T0 + timedelta(seconds=10), 5.0) == 0.0
