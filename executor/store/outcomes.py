"""What the holder of a running invocation records of its attempt, each write fenced by
its lease generation: the hand-off, the handler's start, the output read, infrastructure
failures, a retry later, the end; and the end of runs whose lease expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    String,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from executor.statuses import AttemptKind, InvocationStatus, RunErrorType
from executor.store import gateway as gateway_store
from executor.store import logs as log_store
from executor.store.clock import database_now, db_now
from executor.store.db import Database
from executor.store.driver_sql import DriverStatement
from executor.store.leases import LEASE_EXPIRED, fence, release
from executor.store.queries import get_invocation
from executor.store.run_errors import RunError
from executor.store.tables import Invocation, InvocationToken, utcnow

__all__ = [
    "HandOff",
    "InfraFailing",
    "RunOutput",
    "begin_hand_off",
    "finish",
    "hand_off",
    "hand_off_with_token",
    "infrastructure_failing",
    "mark_handler_started",
    "note_output_read",
    "plugin_failures",
    "requeue_expired",
    "retry_later",
]


@dataclass(frozen=True)
class RunOutput:
    """How much log a finished run wrote, and whether some of it was dropped."""

    log_bytes: int
    truncated: bool


# On every start's path: built once.
_HAND_OFF = (
    update(Invocation)
    .where(
        Invocation.id == bindparam("run"),
        Invocation.lease_generation == bindparam("generation"),
        Invocation.status == InvocationStatus.RUNNING,
    )
    .values(deadline_at=bindparam("deadline"), cold_start=bindparam("cold"))
)


# On PostgreSQL the hand-off and its token are one statement, its own transaction: the
# fenced update, and the token's row inserted only if it matched (a worker's store is a
# network round trip away; with BEGIN and COMMIT this took four).
#
# Its commit does not wait for the server to flush its log to disk (``synchronous_commit``
# off for this transaction alone, set where the update matched): every start waited for that
# flush, up to a millisecond under load. A server crash can lose this transaction only
# before a later commit flushes it (the run's next, its handler's start, comes milliseconds
# later), and what it wrote is all it loses: the lease generation is the claim's, which was
# durable before it, so every fenced write of the run still holds; a deadline never recorded
# reads as already passed to an executor that adopts the container after a restart
# (``InvocationRunner.watch``); a token without its row is refused by every gateway that asks
# the store (``CallRefused.UNKNOWN``), and this process's, which holds it in memory, revokes
# it at the handler's end as always.
_TOKEN_COLUMNS = ["token_sha256", "invocation_id", "project_id", "expires_at"]
_TOKEN_COLUMNS += ["lease_generation", "created_at", "calls"]
#
# The run's row is locked first, and the fence is checked on what that lock returns: the
# row as the last commit left it, where an UPDATE alone tests it as the statement's snapshot
# saw it. The dispatcher starts a run while its claim commits (``executor.run.dispatcher``):
# its hand-off, sent at once, waits on the lock for the claim's end, where it would have
# matched nothing (waiting in the process for the commit, then sending it, was a round trip
# and two thread switches more on every start).
_LOCKED = (
    select(Invocation.id, Invocation.lease_generation, Invocation.status)
    .where(Invocation.id == bindparam("run"))
    .with_for_update()
    .cte("locked")
)
_HANDED = (
    update(Invocation)
    .where(
        Invocation.id == _LOCKED.c.id,
        _LOCKED.c.lease_generation == bindparam("generation"),
        _LOCKED.c.status == InvocationStatus.RUNNING,
    )
    .values(deadline_at=bindparam("deadline"), cold_start=bindparam("cold"))
    .returning(Invocation.id)
    .cte("handed")
)
_HAND_OFF_WITH_TOKEN = (
    insert(InvocationToken)
    .add_cte(_HANDED)
    .from_select(
        _TOKEN_COLUMNS,
        select(
            bindparam("token", type_=String()),
            _HANDED.c.id,
            bindparam("project", type_=String()),
            bindparam("deadline", type_=DateTime()),
            bindparam("generation", type_=Integer()),
            bindparam("created", type_=DateTime()),
            literal(0),
        ).where(func.set_config("synchronous_commit", "off", True).is_not(None)),
        include_defaults=False,  # given: a statement built once gets no Python defaults
    )
    .returning(InvocationToken.invocation_id)
)
_HAND_OFF_DRIVER = DriverStatement.of(_HAND_OFF_WITH_TOKEN)  # on every start's path


@dataclass(frozen=True)
class HandOff:
    """What a run's hand-off records: its attempt's deadline and how its container started,
    and the run token (its SHA-256) the plugin calls the platform with until the deadline."""

    invocation_id: str
    generation: int  # the lease generation the writes are fenced by
    deadline: datetime
    cold_start: bool
    token_sha256: str
    project_id: str


def hand_off(db: Database, handed: HandOff) -> bool:
    """Record the hand-off and its token; False, and nothing recorded, when the lease
    generation was lost. On PostgreSQL one statement (one round trip to a remote store); on
    SQLite two, in one transaction."""
    if db.engine.dialect.name == "postgresql":
        with db.autocommit_connection() as connection:
            return hand_off_with_token(connection, handed)
    with db.session() as session:
        run, generation, deadline = handed.invocation_id, handed.generation, handed.deadline
        if not begin_hand_off(session, run, generation, deadline, handed.cold_start):
            return False
        gateway_store.add_token(
            session, handed.token_sha256, run, handed.project_id, deadline, generation
        )
    return True


def hand_off_with_token(connection: Connection, handed: HandOff) -> bool:
    """``begin_hand_off`` and ``gateway.add_token`` in one statement (PostgreSQL, on an
    autocommit ``connection``): False, and nothing recorded, when the lease was lost."""
    params = {"run": handed.invocation_id, "generation": handed.generation}
    params |= {"deadline": handed.deadline, "cold": handed.cold_start}
    params |= {"token": handed.token_sha256, "project": handed.project_id}
    params["created"] = utcnow()
    return bool(_HAND_OFF_DRIVER.rows(connection, params))


def begin_hand_off(
    session: Session, invocation_id: str, generation: int, deadline: datetime, cold_start: bool
) -> bool:
    """Record the deadline of the attempt handed off now, and how its container started;
    False (nothing recorded) when the lease ``generation`` was lost."""
    # One conditional UPDATE: the fence and the write.
    params = {"run": invocation_id, "generation": generation, "deadline": deadline}
    result = session.connection().execute(_HAND_OFF, params | {"cold": cold_start})
    return int(result.rowcount) == 1


def mark_handler_started(
    session: Session, invocation_id: str, generation: int, at: datetime
) -> None:
    session.execute(
        update(Invocation)
        .where(Invocation.id == invocation_id, Invocation.lease_generation == generation)
        .values(handler_started_at=at)
    )


def note_output_read(
    session: Session, invocation_id: str, generation: int, *, stdout: int, stderr: int
) -> None:
    """Record how much of the container's output is stored (with those log records)."""
    session.execute(
        update(Invocation)
        .where(Invocation.id == invocation_id, Invocation.lease_generation == generation)
        .values(stdout_read_bytes=stdout, stderr_read_bytes=stderr)
    )


@dataclass(frozen=True)
class InfraFailing:
    """When a run's infrastructure failures began, and now, both by the store's clock."""

    since: datetime
    now: datetime

    @property
    def for_s(self) -> float:
        return max((self.now - self.since).total_seconds(), 0.0)


def infrastructure_failing(
    session: Session, invocation_id: str, generation: int
) -> InfraFailing | None:
    """Note an infrastructure failure of the held invocation: the first one's time is
    recorded (later ones keep it). None (nothing recorded) when the lease ``generation``
    was lost."""
    if not fence(session, invocation_id, generation):
        return None
    invocation = get_invocation(session, invocation_id)
    now = database_now(session)
    if invocation.infra_failing_since is None:
        invocation.infra_failing_since = now
    return InfraFailing(invocation.infra_failing_since, now)


def plugin_failures(invocation: Invocation) -> int:
    """How many of the invocation's recorded attempts ended in a plugin failure."""
    return sum(entry.get("kind") == AttemptKind.PLUGIN for entry in invocation.attempts)


def retry_later(
    session: Session,
    invocation_id: str,
    generation: int,
    reason: str,
    delay_s: float,
    kind: AttemptKind | None = None,
) -> bool:
    """Queue a held invocation again, claimable no sooner than ``delay_s`` from now (other
    runs are claimed meanwhile); False if the lease ``generation`` was lost. ``kind`` is
    kept with ``reason`` in the attempt history."""
    if not fence(session, invocation_id, generation):
        return False
    invocation = get_invocation(session, invocation_id)
    _note_attempt(invocation, reason, kind)
    release(invocation, status=InvocationStatus.QUEUED)
    invocation.not_before = utcnow() + timedelta(seconds=delay_s)
    return True


# A run's end, in two statements built once (every run ends through them): the fence,
# giving back what the end is computed from, then the end's values.
_ENDING = (Invocation.attempt, Invocation.attempts, Invocation.started_at)
_HELD = (
    update(Invocation)
    .where(
        Invocation.id == bindparam("run"),
        Invocation.lease_generation == bindparam("generation"),
        Invocation.status == InvocationStatus.RUNNING,
    )
    .values(lease_generation=Invocation.lease_generation)  # a no-op that locks the row
    .returning(*_ENDING)
)
_UNHELD = select(*_ENDING).where(Invocation.id == bindparam("run"))
_END = (
    update(Invocation)
    .where(Invocation.id == bindparam("run"))
    .values(
        status=bindparam("end"),
        exit_code=bindparam("code"),
        error=bindparam("message"),
        error_type=bindparam("failure_type"),
        error_message=bindparam("failure_message"),
        error_location=bindparam("failure_location"),
        attempts=bindparam("history", type_=Invocation.__table__.c.attempts.type),
        lease_expires_at=None,  # the owner stays: it tells which executor ran it
        finished_at=bindparam("ended"),
        duration_ms=bindparam("took"),
    )
)
_END_WITH_OUTPUT = _END.values(log_bytes=bindparam("written"), truncated=bindparam("cut"))


def finish(
    session: Session,
    invocation_id: str,
    generation: int | None,
    reason: str | None = None,
    *,
    status: InvocationStatus,
    exit_code: int | None = None,
    error: str | None = None,
    output: RunOutput | None = None,
    kind: AttemptKind | None = None,
    failure: RunError | None = None,
    at: datetime | None = None,
) -> bool:
    """Record the terminal ``status`` of a running invocation held under lease
    ``generation`` (None: whoever holds it, for the store's own expiry), ended ``at``
    (default: now).

    ``reason`` (and its ``kind``) is kept in the attempt history; ``output`` (None: not
    known) how much log the run wrote; ``failure`` the summary of a run that did not
    succeed (default: classified from ``status`` and ``error``). Returns False (and
    changes nothing) when the lease was lost to another holder or the run ended already,
    so a result is never recorded twice. Written with statements, not through the
    session's objects: reload a run the session holds to see its end.
    """
    connection = session.connection()
    fenced = generation is not None
    params = {"run": invocation_id, "generation": generation}
    held = connection.execute(_HELD if fenced else _UNHELD, params).first()
    if held is None:
        return False
    attempt, history, started_at = held
    now = at or utcnow()
    kept = _failure(status, failure or RunError.classified(status, error))
    if reason is not None:
        history = [*history, _attempt_entry(attempt, reason, kind)]
    values: dict[str, Any] = {
        "run": invocation_id,
        "end": status.value,
        "code": exit_code,
        "message": error,
        "failure_type": kept.type if kept else None,
        "failure_message": kept.message if kept else None,
        "failure_location": kept.location if kept else None,
        "history": history,
        "ended": now,
        "took": None if started_at is None else int((now - started_at).total_seconds() * 1000),
    }
    if output is None:
        connection.execute(_END, values)
    else:
        values |= {"written": output.log_bytes, "cut": output.truncated}
        connection.execute(_END_WITH_OUTPUT, values)
    log_store.announce(session)  # followers of the run end their streams
    return True


def requeue_expired(session: Session, max_attempts: int) -> list[Invocation]:
    """Hand running invocations whose lease expired (their executor died) back to the
    queue; one that used its ``max_attempts``-th attempt ends ``dead`` instead (an event
    that kills every executor running it must not run forever). Returns them all, each
    with its new status; the caller revokes their tokens.

    Here rather than with the leases: a run that ends, ends through ``finish``."""
    expired = list(
        session.scalars(
            select(Invocation).where(
                Invocation.status == InvocationStatus.RUNNING,
                # At or before: mark_lost expires leases at now(), which on PostgreSQL
                # is still now in the same transaction.
                Invocation.lease_expires_at <= db_now(),
            )
        )
    )
    for invocation in expired:
        if invocation.attempt < max_attempts:
            _note_attempt(invocation, LEASE_EXPIRED)
            release(invocation, status=InvocationStatus.QUEUED)
            continue
        error = f"gave up after {invocation.attempt} attempts: {LEASE_EXPIRED}"
        failure = RunError(RunErrorType.LEASE_EXPIRED, error)
        finish(
            session,
            invocation.id,
            None,
            LEASE_EXPIRED,
            status=InvocationStatus.DEAD,
            error=error,
            failure=failure,
        )
        session.refresh(invocation)  # the end was written by statements
        release(invocation, status=InvocationStatus.DEAD)  # the one that lost it records nothing
    return expired


def _note_attempt(invocation: Invocation, reason: str, kind: AttemptKind | None = None) -> None:
    invocation.attempts = [*invocation.attempts, _attempt_entry(invocation.attempt, reason, kind)]


def _attempt_entry(attempt: int, reason: str, kind: AttemptKind | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"attempt": attempt, "reason": reason}
    entry["at"] = utcnow().isoformat()
    if kind is not None:
        entry["kind"] = kind.value
    return entry


def _failure(status: InvocationStatus, failure: RunError) -> RunError | None:
    """A failed run's summary, bounded whoever built it; a success has none."""
    if status == InvocationStatus.SUCCEEDED:
        return None
    return RunError.bounded(failure.type, failure.message, failure.location)
