"""The background thread the pre-puller, warm pool, retention and dispatcher share: it runs
its step at start and on each wake, survives a failing step, and ends at stop. Each check
waits on what the step recorded (bounded only so a broken thread fails the test)."""

from __future__ import annotations

import logging
import threading

import pytest

from executor.errors import ExecutorError
from executor.periodic import Periodic

WAIT_S = 30.0  # a bound for failure only: each wait ends when the step has run
NEVER_S = 3600.0  # an interval that never comes in a test: only start and wake run a step


class Steps:
    """A step that records each pass and can be told to fail the next ones."""

    def __init__(self) -> None:
        self.passes = 0
        self.fail_with: Exception | None = None
        self.ran = threading.Condition()

    def __call__(self) -> None:
        with self.ran:
            self.passes += 1
            self.ran.notify_all()
        if self.fail_with is not None:
            raise self.fail_with

    def wait_for(self, passes: int) -> None:
        with self.ran:
            assert self.ran.wait_for(lambda: self.passes >= passes, WAIT_S), self.passes


def test_it_runs_at_start_and_again_at_each_wake_then_stops() -> None:
    steps = Steps()
    keeper = Periodic("tester", steps, NEVER_S, logging.getLogger("tester"))
    keeper.start()
    steps.wait_for(1)
    keeper.wake()
    steps.wait_for(2)
    keeper.stop()
    assert keeper.stopping
    passes = steps.passes
    keeper.wake()  # after stop: nothing runs
    assert keeper._thread is not None and not keeper._thread.is_alive()
    assert steps.passes == passes


@pytest.mark.parametrize(
    ("error", "level", "logged"),
    [
        (
            ExecutorError("image plugin:1 is missing"),
            logging.WARNING,
            "tester: image plugin:1 is missing",
        ),
        (RuntimeError("boom"), logging.ERROR, "tester failed; retrying at the next interval"),
    ],
)
def test_a_failing_step_is_logged_and_the_thread_runs_it_again(
    error: Exception, level: int, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    steps = Steps()
    steps.fail_with = error
    keeper = Periodic("tester", steps, NEVER_S, logging.getLogger("tester"))
    with caplog.at_level(logging.WARNING, logger="tester"):
        keeper.start()
        steps.wait_for(1)
        keeper.wake()
        steps.wait_for(2)  # the failure did not end the thread
        keeper.stop()
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tester"]
    assert records[:2] == [(level, logged), (level, logged)]
    assert (records[0][0] == logging.ERROR) == (caplog.records[0].exc_info is not None)
