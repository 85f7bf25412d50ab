"""What follows an attempt's end (``executor.run.outcome.OutcomeStep``), on its own: no
dispatcher, no engine, a real SQLite store. Each case checks the run's row, its attempt
history and the SYSTEM lines the step wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from executor.gateway.live import LiveTokens
from executor.metrics import Metrics, QueueFigures
from executor.run.attempt import Attempt
from executor.run.ending import RunEnding
from executor.run.exit_cause import RunOutcome
from executor.run.log_writer import RunLogWriter
from executor.run.outcome import OutcomeStep
from executor.run.output import OutputCollector
from executor.run.retry import BUDGET_SETTING, Infrastructure, RetryPolicy
from executor.statuses import AttemptKind, InvocationStatus, RunErrorType
from executor.store.db import Database
from executor.store.tables import Invocation, LogRecord
from tests.store_rows import add_run

EXIT_1 = RunOutcome(
    InvocationStatus.FAILED,
    1,
    "plugin exited with code 1",
    0.0,
    error_type=RunErrorType.EXIT_ERROR,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def step(db: Database, *, handing_back: bool = False, budget_s: float = 600.0) -> OutcomeStep:
    ending = RunEnding(db, LiveTokens(), Metrics(lambda: QueueFigures({}, None, {})), lambda: None)
    policy = RetryPolicy(3, 0.01, 0.02, budget_s)
    return OutcomeStep(db, ending, policy, lambda: handing_back)


def held_attempt(db: Database, *, max_retries: int = 0, generation: int = 1) -> Attempt:
    """An attempt of a running invocation whose lease is at generation 1; the attempt
    holds ``generation``."""
    stored = add_run(
        db,
        status=InvocationStatus.RUNNING,
        attempt=1,
        lease_generation=1,
        max_retries=max_retries,
    )
    with db.session() as session:
        invocation = session.get(Invocation, stored.id)
        assert invocation is not None
        session.expunge(invocation)
    invocation.lease_generation = generation
    return Attempt(invocation, RunLogWriter(db, invocation, None), OutputCollector(1024))


def row_and_lines(db: Database, attempt: Attempt) -> tuple[Invocation, list[str]]:
    with db.session() as session:
        row = session.get(Invocation, attempt.invocation.id)
        assert row is not None
        session.expunge(row)
        lines = list(session.scalars(select(LogRecord.content).order_by(LogRecord.seq)))
    return row, lines


def test_a_shutdown_hands_the_run_back_whatever_it_ended(db: Database) -> None:
    attempt = held_attempt(db, max_retries=0)

    step(db, handing_back=True).conclude(attempt, EXIT_1)

    row, lines = row_and_lines(db, attempt)
    assert row.status == InvocationStatus.QUEUED
    assert [(a["reason"], a["kind"]) for a in row.attempts] == [
        ("handed back at executor shutdown", AttemptKind.HANDED_BACK)
    ]
    assert lines == ["the executor is shutting down: the run is handed back"]


def test_a_plugin_failure_with_a_retry_left_is_queued_again_saying_when(db: Database) -> None:
    attempt = held_attempt(db, max_retries=1)

    step(db).conclude(attempt, EXIT_1)

    row, lines = row_and_lines(db, attempt)
    assert row.status == InvocationStatus.QUEUED
    assert [(a["reason"], a["kind"]) for a in row.attempts] == [
        ("failed: plugin exited with code 1", AttemptKind.PLUGIN)
    ]
    assert len(lines) == 1
    assert lines[0].startswith("failed: plugin exited with code 1; retrying in ")


def test_a_plugin_failure_without_retries_ends_as_it_ended(db: Database) -> None:
    attempt = held_attempt(db, max_retries=0)

    step(db).conclude(attempt, EXIT_1)

    row, lines = row_and_lines(db, attempt)
    assert (row.status, row.exit_code, row.error) == (
        InvocationStatus.FAILED,
        1,
        "plugin exited with code 1",
    )
    assert row.attempts == []
    assert lines == ["run ended failed: plugin exited with code 1"]


def test_an_infrastructure_failure_past_its_budget_ends_dead_naming_the_part_and_setting(
    db: Database,
) -> None:
    attempt = held_attempt(db)

    step(db, budget_s=0.0).infrastructure_failure(
        attempt, "store error: gone", Infrastructure.STORE
    )

    row, lines = row_and_lines(db, attempt)
    assert row.status == InvocationStatus.DEAD
    assert row.error == (
        "gave up after 1 attempts over 0 s of infrastructure failures, the last of the store: "
        f"store error: gone; infrastructure failures are retried for {BUDGET_SETTING} (0 s) "
        "from the first: raise it to wait out longer outages"
    )
    assert [(a["reason"], a["kind"]) for a in row.attempts] == [
        ("infrastructure: store error: gone", AttemptKind.INFRASTRUCTURE)
    ]
    assert lines == [
        "the executor could not run the plugin: store error: gone; infrastructure failures "
        "for 0 s used up the 0 s budget; giving up"
    ]


def test_an_attempt_whose_lease_was_lost_records_nothing(db: Database) -> None:
    """Another node holds the run now (its generation moved on): neither the end nor a
    retry nor a log line of this attempt is stored."""
    attempt = held_attempt(db, generation=0)

    step(db).infrastructure_failure(attempt, "engine error", Infrastructure.ENGINE)
    step(db).conclude(attempt, EXIT_1)

    row, lines = row_and_lines(db, attempt)
    assert (row.status, row.attempts, row.error) == (InvocationStatus.RUNNING, [], None)
    assert lines == []
