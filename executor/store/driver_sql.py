"""Statements on the hottest paths of a PostgreSQL store (the event's write, the claim, the
hand-off), compiled once and run on the driver's cursor of the caller's connection, in its
transaction.

A profile of a claim showed SQLAlchemy's work around each execution (the statement's cache
key, the execution context, the ORM's loading of the rows) costing two to three times the
statement on the server: about 0.5 ms per statement on a quiet machine, more on a loaded
one, on every start's path. A ``DriverStatement`` is what SQLAlchemy compiled: its SQL, with
its constants written in (the planner sees them: a status is a literal, not a parameter),
the result columns that are UTC datetimes (``UTCDateTime``: given back aware), and the
parameters sent as JSONB. Each is prepared on a connection at its first execution there, so
the server parses it once per connection (``Database``'s pool hands out the connection
returned last). What SQLAlchemy does around a statement that matters is kept: the engine's
listeners hear it, and the driver's errors are raised as SQLAlchemy raises them (wrapped,
through the ``handle_error`` listeners, a lost connection invalidated). Rows become
instances with ``detached`` (``columns_of`` names the columns), and rows to insert are sent
as one JSON parameter (``insert_records``, ``records``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from typing import Any, TypeVar

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Connection, Table, inspect
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from executor.store.tables.base import UTCDateTime

__all__ = [
    "DriverStatement",
    "columns_of",
    "detached",
    "insert_records",
    "records",
    "width",
]

T = TypeVar("T")

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy


# Constants written into the SQL: the planner sees them (a generic plan knows that ``queued``
# is a rare status), and a prepared statement's plan can be kept (``DriverStatement``).
_LITERALS = (str, int, float, type(None))


def _literal(value: str | int | float | None) -> str:
    """``value`` as SQL (a boolean is an int: written as PostgreSQL reads it)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _bound(value: Any) -> Any:
    """A parameter as psycopg sends it: datetimes as the naive UTC the columns hold (as
    ``UTCDateTime`` binds them), enums as their values."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True)
class DriverStatement:
    """A PostgreSQL statement compiled once, with its constant parameters."""

    sql: str
    constants: Mapping[str, Any]
    aware: tuple[int, ...]  # the result columns that are UTC datetimes
    json: frozenset[str]  # the parameters sent as JSONB
    prepared: bool  # prepared on each connection at its first execution

    @classmethod
    def of(cls, statement: ClauseElement, *, prepared: bool = True) -> DriverStatement:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)  # a statement's
        sql, constants = str(compiled), {}
        for bind, name in compiled.bind_names.items():
            if bind.required:
                continue  # the caller's
            value = _bound(compiled.params[name])
            if isinstance(value, _LITERALS):
                sql = sql.replace(f"%({name})s", _literal(value))
            else:
                constants[name] = value
        selected = getattr(statement, "exported_columns", None) or []
        aware = tuple(
            index for index, column in enumerate(selected) if isinstance(column.type, UTCDateTime)
        )
        json = frozenset(
            name for bind, name in compiled.bind_names.items() if isinstance(bind.type, JSON)
        )
        return cls(sql, constants, aware, json, prepared)

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The statement's rows, executed with ``params`` on ``connection``'s driver
        connection, in its transaction."""
        bound = dict(self.constants)
        bound.update((name, _bound(value)) for name, value in params.items())
        for name in self.json:
            bound[name] = Jsonb(bound[name])
        driver = connection.connection.driver_connection
        assert driver is not None  # a connection in use has one
        events = connection.dispatch
        with driver.cursor() as cursor:
            # Whoever listens to the engine's statements (tests, tracing) hears these too.
            if events.before_cursor_execute:
                events.before_cursor_execute(connection, cursor, self.sql, bound, None, False)
            try:
                cursor.execute(self.sql, bound, prepare=self.prepared)
                rows: Sequence[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
            except Exception as error:
                # Raised as SQLAlchemy raises a driver's error: wrapped (IntegrityError,
                # OperationalError, ...), through the engine's handle_error listeners
                # (``db.unreachable``), and a lost connection invalidated, not pooled again.
                connection._handle_dbapi_exception(error, self.sql, bound, cursor, None)
                raise  # not reached: the call above raises
            if events.after_cursor_execute:
                events.after_cursor_execute(connection, cursor, self.sql, bound, None, False)
        if not self.aware:
            return list(rows)
        return [self._aware(row) for row in rows]

    def _aware(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index in self.aware:
            value = values[index]
            if value is not None:
                values[index] = value.replace(tzinfo=UTC)
        return tuple(values)


@dataclass(frozen=True)
class _Columns:
    """A mapped class's columns, in the mapper's order: each one's attribute and column
    name, and where the (single-column) primary key is."""

    keys: tuple[str, ...]
    names: tuple[str, ...]
    key_at: int


_COLUMNS: dict[type[Any], _Columns] = {}


def _columns(model: type[Any]) -> _Columns:
    found = _COLUMNS.get(model)
    if found is None:
        mapper = inspect(model)
        pairs = [(prop.key, prop.columns[0].name) for prop in mapper.column_attrs]
        (key,) = mapper.primary_key
        names = tuple(name for _, name in pairs)
        keys = tuple(attribute for attribute, _ in pairs)
        found = _COLUMNS[model] = _Columns(keys, names, names.index(key.name))
    return found


def width(model: type[Any]) -> int:
    """How many columns ``columns_of`` gives for ``model``."""
    return len(_columns(model).names)


def columns_of(model: type[Any], columns: Any) -> list[ColumnElement[Any]]:
    """``model``'s columns taken from ``columns`` (a table's or a CTE's ``.c``), in the
    order ``detached`` reads them."""
    return [columns[name] for name in _columns(model).names]


def detached(model: type[T], values: Sequence[Any]) -> T | None:
    """The ``model`` instance whose columns (``columns_of``' order) hold ``values``, as a
    query would have loaded it and its session then closed; None when its primary key is
    None, as an outer join gives."""
    columns = _columns(model)
    if values[columns.key_at] is None:
        return None
    instance: T = inspect(model).class_manager.new_instance()
    instance.__dict__.update(zip(columns.keys, values, strict=True))
    make_transient_to_detached(instance)
    return instance


def insert_records(model: type[Any], name: str) -> str:
    """SQL of a CTE ``name`` inserting into ``model``'s table the rows of the bound JSON array of
    the same name (``records``), every column of each row: one statement and one
    parameter whatever the rows' number, where a multi-row INSERT is another statement to
    build and compile for each number."""
    table: Table = model.__table__
    columns = ", ".join(f'"{column.name}"' for column in table.columns)
    return (
        f"{name} AS (INSERT INTO {table.name} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table.name}, CAST(:{name} AS json)))"
    )


def records(model: type[Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as ``insert_records`` reads them: a JSON array, each row with its columns'
    Python-side defaults where it has no value (as SQLAlchemy's INSERT fills them), its
    datetimes as the naive UTC the columns hold."""
    defaults = _defaults(model.__table__)
    full = [
        {**{key: make() for key, make in defaults.items() if key not in row}, **row} for row in rows
    ]
    return json.dumps(full, default=_json_value, separators=(",", ":"))


_DEFAULTS: dict[str, dict[str, Callable[[], Any]]] = {}


def _defaults(table: Table) -> dict[str, Callable[[], Any]]:
    """What makes each column's Python-side default, by column key."""
    found = _DEFAULTS.get(table.name)
    if found is None:
        found = _DEFAULTS[table.name] = {
            column.key: _maker(column.default)
            for column in table.columns
            if column.default is not None
        }
    return found


def _maker(default: Any) -> Callable[[], Any]:
    if default.is_callable:
        return partial(default.arg, None)  # SQLAlchemy's wrapper of a function of no context
    value = default.arg  # a constant
    return lambda: value


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _bound(value).isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")
