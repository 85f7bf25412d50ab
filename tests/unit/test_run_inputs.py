"""What a claimed attempt runs is read in one statement (``query_store.run_inputs``): its
event, version, plugin, its activation's runtime and the seq of its last log record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from executor.store import queries as query_store
from executor.store.db import Database
from executor.store.tables import Activation, Invocation, LogRecord, Webhook
from tests.store_rows import add_run


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    yield database
    database.dispose()


def record(run: Invocation, seq: int) -> LogRecord:
    return LogRecord(
        plugin_name="p",
        project_id=run.project_id,
        run_id=run.id,
        log_type="INFO",
        content=f"line {seq}",
        stream="stdout",
        seq=seq,
    )


def read(db: Database, run: Invocation) -> tuple[query_store.RunInputs, int]:
    """The run's inputs, and how many statements reading them took."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as session:
            return query_store.run_inputs(session, run), len(statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_inputs_of_a_run_with_records_and_a_runtime_are_one_statement(db: Database) -> None:
    run = add_run(db)
    with db.session() as session:
        session.add(Activation(plugin_id=run.plugin_id, project_id="pr", runtime="runsc"))
        session.add_all([record(run, 1), record(run, 3), record(run, 2)])
    inputs, statements = read(db, run)
    assert statements == 1
    assert inputs.event is not None and inputs.event.id == run.event_id
    assert inputs.version is not None and inputs.version.id == run.version_id
    assert inputs.plugin is not None and inputs.plugin.id == run.plugin_id
    assert (inputs.runtime, inputs.last_seq) == ("runsc", 3)


def test_a_first_attempt_has_no_record_and_no_activation_runtime(db: Database) -> None:
    run = add_run(db)
    inputs, _ = read(db, run)
    assert (inputs.runtime, inputs.last_seq) == (None, 0)
    assert inputs.event is not None and inputs.version is not None


def test_the_records_of_another_run_are_not_counted(db: Database) -> None:
    run = add_run(db)
    with db.session() as session:
        other = record(run, 7)
        other.run_id = run.id[:-1] + "x"  # an id sharing all but its last character
        session.add_all([other, record(run, 2)])
    inputs, _ = read(db, run)
    assert inputs.last_seq == 2


def test_a_webhook_versions_run_carries_its_receiver_and_a_plugin_run_none(
    db: Database,
) -> None:
    """The dispatcher reads its claimed runs' inputs in its claim's transaction, and sends
    the runs of a webhook version to the deliverer by the receiver read with them."""
    run = add_run(db)
    assert read(db, run)[0].webhook is None
    with db.session() as session:
        session.add(
            Webhook(version_id=run.version_id, url="https://hooks.lan/", signing_secret="s")
        )
    webhook = read(db, run)[0].webhook
    assert webhook is not None and webhook.url == "https://hooks.lan/"
    with db.session() as session:
        assert query_store.inputs_of(session, []) == {}
        assert list(query_store.inputs_of(session, [run.id, "no-such-run"])) == [run.id]
