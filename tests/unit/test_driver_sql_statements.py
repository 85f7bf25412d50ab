"""What ``driver_sql.DriverStatement`` sends: the statement's constants written into the SQL
(quoted as SQL), its parameters left as parameters, no database needed."""

from __future__ import annotations

import json

from sqlalchemy import bindparam, literal, select

from executor.store.driver_sql import DriverStatement, records
from executor.store.tables import Invocation


def test_constants_are_written_into_the_sql_and_parameters_are_left_as_parameters() -> None:
    statement = DriverStatement.of(
        select(
            literal("it's"), literal(3), literal(None), literal(True), literal(["a", "b"])
        ).where(Invocation.id == bindparam("run"))
    )
    assert "'it''s'" in statement.sql and "3::INTEGER" in statement.sql
    assert "NULL" in statement.sql and "true" in statement.sql
    assert "%(run)s" in statement.sql  # the caller's
    assert list(statement.constants.values()) == [["a", "b"]]  # not a literal: sent
    assert statement.prepared


def test_records_fill_the_columns_python_side_defaults_and_keep_what_is_given() -> None:
    (row,) = json.loads(records(Invocation, [{"id": "r", "attempt": 2}]))
    assert (row["id"], row["attempt"], row["status"], row["attempts"]) == ("r", 2, "queued", [])
    assert row["cold_start"] is True and row["log_bytes"] == 0 and row["queued_at"]
