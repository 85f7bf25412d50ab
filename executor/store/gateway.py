"""Queries on run tokens (stored as SHA-256 only) and the gateway's call log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from executor.store.leases import fence
from executor.store.tables import GatewayCall, Invocation, InvocationToken, utcnow

__all__ = [
    "CallRefused",
    "NewCall",
    "add_call",
    "add_calls",
    "add_token",
    "count_calls",
    "find_token",
    "revoke_all",
    "revoke_for",
    "take_call",
    "token_current",
    "token_refusal",
]


class CallRefused(StrEnum):
    """Why a token may not make a call (the values are the gateway's error codes)."""

    UNKNOWN = "token_unknown"
    REVOKED = "token_revoked"
    SUPERSEDED = "token_superseded"
    EXPIRED = "token_expired"
    CAP_REACHED = "too_many_calls"


_ADD_TOKEN = insert(InvocationToken)


def add_token(
    session: Session,
    token_sha256: str,
    invocation_id: str,
    project_id: str,
    expires_at: datetime,
    generation: int = 0,
) -> None:
    """Store a run token minted under the run's lease ``generation`` (a statement, not an
    object of the session: this is on every start's path)."""
    row: dict[str, Any] = {"token_sha256": token_sha256, "invocation_id": invocation_id}
    row |= {"project_id": project_id, "expires_at": expires_at, "lease_generation": generation}
    session.connection().execute(_ADD_TOKEN, row)


def find_token(session: Session, token_sha256: str) -> InvocationToken | None:
    return session.get(InvocationToken, token_sha256)


def token_current(session: Session, token: InvocationToken) -> bool:
    """True while the token's lease generation is its run's current one."""
    current = session.scalar(
        select(Invocation.lease_generation).where(Invocation.id == token.invocation_id)
    )
    return current == token.lease_generation


def token_refusal(session: Session, token: InvocationToken, now: datetime) -> CallRefused | None:
    """Why ``token`` may not call at ``now`` (revoked, its attempt superseded, expired), or
    None while it may."""
    # Superseded first: when a node is lost, lease expiry re-queues its runs and revokes
    # their tokens too, and its late calls must say that the attempt lost the run, not
    # that the run finished.
    if not token_current(session, token):
        return CallRefused.SUPERSEDED
    if token.revoked_at is not None:
        return CallRefused.REVOKED
    if token.expires_at <= now:
        return CallRefused.EXPIRED
    return None


def take_call(
    session: Session, token_sha256: str, max_calls: int, now: datetime
) -> int | CallRefused:
    """Count one call against the token: its ordinal within the token's attempt (1, 2, ...),
    or why it is refused.

    One conditional UPDATE re-checks all the token's conditions (not revoked, not expired,
    minted under its run's current lease generation, under ``max_calls``) as it counts: a
    run that ended or lost its lease since the gateway first looked at the token is
    refused here, and concurrent calls of one run never pass the cap or share an ordinal.
    """
    current_generation = (
        select(Invocation.lease_generation)
        .where(Invocation.id == InvocationToken.invocation_id)
        .scalar_subquery()
    )
    counted = session.execute(
        update(InvocationToken)
        .where(
            InvocationToken.token_sha256 == token_sha256,
            InvocationToken.revoked_at.is_(None),
            InvocationToken.expires_at > now,
            InvocationToken.lease_generation == current_generation,
            InvocationToken.calls < max_calls,
        )
        .values(calls=InvocationToken.calls + 1)
        .returning(InvocationToken.calls)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if counted is not None:
        return int(counted)
    # Refused: say why, from the row as it is now.
    token = session.get(InvocationToken, token_sha256, populate_existing=True)
    if token is None:
        return CallRefused.UNKNOWN
    return token_refusal(session, token, now) or CallRefused.CAP_REACHED


def revoke_for(session: Session, invocation_id: str, generation: int | None = None) -> None:
    """Revoke the tokens of a run (its container exited): those minted under lease
    ``generation`` only, when given, so a holder that lost the run cannot revoke the
    token of the attempt that runs it now."""
    query = update(InvocationToken).where(
        InvocationToken.invocation_id == invocation_id, InvocationToken.revoked_at.is_(None)
    )
    if generation is not None:
        query = query.where(InvocationToken.lease_generation == generation)
    session.execute(query.values(revoked_at=utcnow()))


def revoke_all(session: Session) -> int:
    """Revoke every live token: at start no run of a previous process is still going."""
    result = session.execute(
        update(InvocationToken)
        .where(InvocationToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def add_call(session: Session, generation: int, **fields: Any) -> bool:
    """Record one gateway call (method, path, status, bytes, duration) on its invocation,
    made with a token of lease ``generation``; False (nothing recorded) when that is not
    the run's current generation any more: the attempt lost the run."""
    if not fence(session, str(fields["invocation_id"]), generation, running=False):
        return False
    session.add(GatewayCall(**fields))
    return True


@dataclass(frozen=True)
class NewCall:
    """A gateway call to record (``add_calls``): its columns, the lease generation its
    token was minted under, and its ordinal when the gateway counted it in memory."""

    fields: dict[str, Any]
    generation: int
    token_sha256: str
    counted: int | None = None


# Core statements (run on the session's connection): the gateway records every call, and
# an ORM flush costs more than the SQL here. The fence is ``leases.fence``
# (running=False); the count never goes down.
_FENCE = (
    update(Invocation)
    .where(Invocation.id == bindparam("run"), Invocation.lease_generation == bindparam("gen"))
    .values(lease_generation=Invocation.lease_generation)
)
_COUNT = (
    update(InvocationToken)
    .where(
        InvocationToken.token_sha256 == bindparam("sha"),
        InvocationToken.calls < bindparam("counted"),
    )
    .values(calls=bindparam("counted"))
)
_INSERT_CALL = insert(GatewayCall)


def add_calls(session: Session, calls: Sequence[NewCall]) -> list[bool]:
    """``add_call`` for each of ``calls``, in one transaction, in their order; and each
    call's ``counted`` ordinal brought into its token's count (never down). Each token's
    count and each attempt's fence is one statement, however many of its calls there are."""
    connection = session.connection()
    counts: dict[str, int] = {}
    for call in calls:
        if call.counted is not None:
            counts[call.token_sha256] = max(call.counted, counts.get(call.token_sha256, 0))
    for sha, counted in counts.items():
        connection.execute(_COUNT, {"sha": sha, "counted": counted})
    fenced: dict[tuple[str, int], bool] = {}
    for call in calls:
        attempt = (str(call.fields["invocation_id"]), call.generation)
        if attempt not in fenced:
            result = connection.execute(_FENCE, {"run": attempt[0], "gen": attempt[1]})
            fenced[attempt] = int(result.rowcount) == 1
    recorded = [fenced[(str(c.fields["invocation_id"]), c.generation)] for c in calls]
    rows = [call.fields for call, kept in zip(calls, recorded, strict=True) if kept]
    if rows:
        connection.execute(_INSERT_CALL, rows)
    return recorded


def count_calls(session: Session, invocation_id: str) -> int:
    """How many platform calls the run made through the gateway."""
    count = session.scalar(select(func.count()).where(GatewayCall.invocation_id == invocation_id))
    return int(count or 0)
