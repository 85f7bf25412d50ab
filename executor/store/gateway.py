"""Queries on run tokens (stored as SHA-256 only) and the gateway's call log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from executor.store.invocations import fence
from executor.store.tables import GatewayCall, Invocation, InvocationToken, utcnow

__all__ = [
    "add_call",
    "add_token",
    "count_calls",
    "find_token",
    "revoke_all",
    "revoke_for",
    "take_call",
    "token_current",
]


def add_token(
    session: Session,
    token_sha256: str,
    invocation_id: str,
    project_id: str,
    expires_at: datetime,
    generation: int = 0,
) -> None:
    """Store a run token minted under the run's lease ``generation``."""
    session.add(
        InvocationToken(
            token_sha256=token_sha256,
            invocation_id=invocation_id,
            project_id=project_id,
            expires_at=expires_at,
            lease_generation=generation,
        )
    )


def find_token(session: Session, token_sha256: str) -> InvocationToken | None:
    return session.get(InvocationToken, token_sha256)


def token_current(session: Session, token: InvocationToken) -> bool:
    """True while the token's lease generation is its run's current one."""
    current = session.scalar(
        select(Invocation.lease_generation).where(Invocation.id == token.invocation_id)
    )
    return current == token.lease_generation


def take_call(session: Session, token_sha256: str, max_calls: int) -> bool:
    """Count one call against the token; False when it already made ``max_calls``.

    One conditional UPDATE, so concurrent calls of one run cannot both pass the cap.
    """
    result = session.execute(
        update(InvocationToken)
        .where(InvocationToken.token_sha256 == token_sha256, InvocationToken.calls < max_calls)
        .values(calls=InvocationToken.calls + 1)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


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


def count_calls(session: Session, invocation_id: str) -> int:
    """How many platform calls the run made through the gateway."""
    count = session.scalar(select(func.count()).where(GatewayCall.invocation_id == invocation_id))
    return int(count or 0)
