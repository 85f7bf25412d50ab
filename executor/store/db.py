"""The database engine and sessions; migrations run with Alembic at start."""

from __future__ import annotations

import contextlib
import functools
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Dialect, Engine, ExceptionContext, create_engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Connection", "Database", "Session", "is_store_outage", "unreachable"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# The PostgreSQL advisory lock key migrations take (any constant of this application's own).
MIGRATION_LOCK = 0x706C7567696E6578  # "pluginex"
DEFAULT_POOL_SIZE = 10  # Settings.database_pool_size
# A pooled server connection idle longer than IDLE_CHECK_S is checked before use (a busy
# pool's connections come back within milliseconds and are not): pinged when its socket has
# something to read (the server ended it) or it sat idle longer than IDLE_PING_S.
IDLE_CHECK_S = 1.0
IDLE_PING_S = 30.0
RETURNED_AT = "executor_returned_at"
# Set on an error the store raised because it could not be reached (``unreachable``).
UNREACHABLE = "executor_store_unreachable"


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (log queries) run while the dispatcher writes; foreign keys are off
    # by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _note_return(_dbapi_connection: Any, record: Any) -> None:
    record.info[RETURNED_AT] = time.monotonic()


def _has_news(dbapi_connection: Any) -> bool:
    """True when an idle connection's socket can be read: the server sent something while
    nobody asked, which is how it ends a session (a restart, ``pg_terminate_backend``, an
    idle timeout: a FATAL message, then the close). Asked of the kernel, no round trip."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # no socket to ask: let the ping find out
        return True


def _ping_if_idle(dialect: Dialect, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Checks a server connection that sat in the pool longer than ``IDLE_CHECK_S`` (the
    server may have closed it meanwhile); the pool replaces one that fails. It is pinged
    when the server sent it something (``_has_news``) or after ``IDLE_PING_S``: a ping on
    every event that came a second after the last one cost each a round trip, and a
    connection lost without a word (a partition) hangs a ping as it would the query."""
    returned = record.info.get(RETURNED_AT)
    if returned is None:
        return
    idle = time.monotonic() - returned
    if idle <= IDLE_CHECK_S or (idle <= IDLE_PING_S and not _has_news(dbapi_connection)):
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as error:
        raise DisconnectionError("a pooled database connection was lost") from error


def _mark_unreachable(context: ExceptionContext) -> None:
    """Marks an error raised while connecting (no connection yet: refused, reset, a
    database that takes none) or that lost its connection, as the store being unreachable;
    a bug's error (bad SQL, a constraint) has a connection that is still good."""
    if context.is_disconnect or context.connection is None:
        setattr(context.sqlalchemy_exception, UNREACHABLE, True)


def unreachable(error: BaseException) -> bool:
    """True when ``error`` (or an error it was raised from) is the store being out of
    reach rather than a failure of the request itself."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, UNREACHABLE, False):
            return True
        if isinstance(current, DisconnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def is_store_outage(error: BaseException) -> bool:
    """True when ``error`` is the store failing (out of reach, a dropped connection, locked)
    rather than a statement it refused: a run trying again later can succeed."""
    return unreachable(error) or isinstance(error, OperationalError | InterfaceError)


class Database:
    """One engine and its session factory; ``session()`` is a unit of work."""

    def __init__(
        self, url: str, pool_size: int = DEFAULT_POOL_SIZE, idle_transaction_s: float | None = None
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        connect_args: dict[str, Any] = {}
        if self.is_sqlite:
            connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        elif idle_transaction_s is not None:
            # A process paused (SIGSTOP, a frozen VM) inside a transaction keeps its row
            # locks: the nodes that would mark it lost block on them for ever. The server
            # ends a transaction left idle this long, which frees them.
            timeout_ms = max(1, round(idle_transaction_s * 1000))
            connect_args = {"options": f"-c idle_in_transaction_session_timeout={timeout_ms}"}
        # A server connection can drop between requests, so one that sat idle in the pool is
        # checked as it is taken (``_ping_if_idle``); checking every one cost a round trip
        # per request under load, and a SQLite file has no connection to lose. Connections
        # past pool_size are closed when returned: a pool smaller than the requests in flight
        # opened a new PostgreSQL connection for most events under load.
        self.engine: Engine = create_engine(
            url,
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            # The connection returned last is taken first: the hot paths' statements are
            # prepared per server connection (``driver_sql``), and a pool handing its
            # connections round in turn had most of them parse the claim's statements anew.
            pool_use_lifo=True,
        )
        event.listen(self.engine, "handle_error", _mark_unreachable)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _tune_sqlite)
        else:
            event.listen(self.engine, "checkin", _note_return)
            event.listen(
                self.engine, "checkout", functools.partial(_ping_if_idle, self.engine.dialect)
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite lets one writer in at a time and makes the others sleep and retry (the
        # busy timeout backs off in steps of up to 100 ms); queueing this process's own
        # hot writers on a lock instead keeps them from sleeping.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.connect() as connection:
            self._sqlite_foreign_keys(connection, on=False)
            try:
                with connection.begin():
                    if not self.is_sqlite:
                        # Processes starting together on one empty database would each
                        # create the schema: one at a time (the lock ends with the commit;
                        # the next finds the schema at head).
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                        )
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            finally:
                self._sqlite_foreign_keys(connection, on=True)

    def _sqlite_foreign_keys(self, connection: Connection, *, on: bool) -> None:
        # SQLite changes a table by copying it, dropping the old one and renaming the copy
        # (Alembic's batch mode). With foreign keys on, that drop deletes, ON DELETE
        # CASCADE, every row that refers to the table: migrations run with them off. The
        # pragma only takes effect outside a transaction, hence its own commit.
        if self.is_sqlite:
            connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
            connection.commit()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """``session()`` for a short unit of work that writes (on SQLite, one at a time in
        this process)."""
        with self._write_lock or contextlib.nullcontext(), self.session() as session:
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """``write_session()`` without the ORM: one Core transaction, for the hottest writes
        (``executor.store.ingest``), where a session's bookkeeping costs more than the SQL."""
        with self._write_lock or contextlib.nullcontext(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def autocommit_connection(self) -> Iterator[Connection]:
        """A connection where each statement is its own transaction: for reads that need no
        snapshot across statements, and writes of one statement (on PostgreSQL, no BEGIN
        and COMMIT: two round trips fewer)."""
        with self.engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            with self.session() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def store_id(self) -> str:
        """This store's identity (made by the migrations), shared by its executors."""
        from executor.store.tables import DispatchLock

        with self.session() as session:
            lock = session.get(DispatchLock, 1)
            assert lock is not None, "run Database.migrate() first"
            return lock.store_id

    def dispose(self) -> None:
        self.engine.dispose()
