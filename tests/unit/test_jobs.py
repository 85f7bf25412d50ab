"""A dispatcher's jobs in flight (``executor.run.jobs``), on their own: a job that raises
ends its run ``crashed`` with the error's first line (a store outage instead waits it out),
its slot is freed and the dispatcher is woken."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from executor.gateway.live import LiveTokens
from executor.run.jobs import Jobs
from executor.settings import Settings
from executor.store.tables import Invocation

SETTINGS = Settings(operator_key="pe_op_jobs-0123456789", max_concurrent_runs=2)
WAIT_S = 60  # a deadline for a failure, never a pace: each test waits on an event


class Recorder:
    """The runner's side: what it was asked to record."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def store_failed(self, invocation: Invocation, reason: str) -> None:
        self.calls.append(("store_failed", invocation.id, reason))

    def crashed(self, invocation: Invocation, reason: str) -> None:
        self.calls.append(("crashed", invocation.id, reason))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def done() -> threading.Event:
    return threading.Event()


@pytest.fixture
def jobs(recorder: Recorder, done: threading.Event) -> Iterator[Jobs]:
    running = Jobs(SETTINGS, recorder, LiveTokens(), done.set)
    yield running
    running.shutdown()


def run_raising(jobs: Jobs, done: threading.Event, error: Exception) -> None:
    def job(_invocation: Invocation) -> None:
        raise error

    jobs.submit(job, Invocation(id="run-1", tenant_id="t"))
    assert done.wait(WAIT_S), "the job never ended"


def test_a_job_that_raises_ends_its_run_crashed_with_the_first_line(
    jobs: Jobs, recorder: Recorder, done: threading.Event
) -> None:
    run_raising(jobs, done, RuntimeError("conclude broke\nand this line stays in the log"))

    assert recorder.calls == [("crashed", "run-1", "executor error: RuntimeError: conclude broke")]
    assert jobs.running_ids() == []
    assert jobs.free_slots()[0] == SETTINGS.runs.max_concurrent_runs


def test_a_store_outage_is_waited_out_not_crashed(
    jobs: Jobs, recorder: Recorder, done: threading.Event
) -> None:
    run_raising(jobs, done, OperationalError("SELECT 1", {}, Exception("connection refused")))

    assert [(kind, run_id) for kind, run_id, _ in recorder.calls] == [("store_failed", "run-1")]
    assert recorder.calls[0][2].startswith("store error: OperationalError: ")
    assert jobs.running_ids() == []


def test_a_job_that_returns_records_nothing(
    jobs: Jobs, recorder: Recorder, done: threading.Event
) -> None:
    jobs.submit(lambda _invocation: None, Invocation(id="run-1", tenant_id="t"))

    assert done.wait(WAIT_S), "the job never ended"
    assert recorder.calls == []
    assert jobs.running_ids() == []
