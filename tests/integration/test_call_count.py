"""The gateway's call counter (real SQLite and PostgreSQL): one conditional statement that
checks the token again as it counts, and hands out the call's ordinal in its attempt."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from executor.store import gateway as gateway_store
from executor.store.db import Database
from executor.store.gateway import CallRefused
from executor.store.tables import Invocation, InvocationToken, utcnow
from tests.integration.test_fencing import OLD, claim, db, queued_run, register

__all__ = ["db"]  # the fixture (SQLite and PostgreSQL), shared with test_fencing

CAP = 3


def live_token(db: Database, token_sha256: str, run_id: str, generation: int) -> None:
    """A token of ``run_id`` minted under ``generation``, checked as the gateway checks it
    first: it may call."""
    with db.session() as session:
        expires = utcnow() + timedelta(minutes=5)
        gateway_store.add_token(session, token_sha256, run_id, "pr", expires, generation)
    with db.session() as session:
        token = gateway_store.find_token(session, token_sha256)
        assert token is not None
        assert gateway_store.token_refusal(session, token, utcnow()) is None


def take(db: Database, token_sha256: str) -> int | CallRefused:
    with db.session() as session:
        return gateway_store.take_call(session, token_sha256, CAP, utcnow())


def counted(db: Database, token_sha256: str) -> int:
    with db.session() as session:
        calls = session.scalar(
            select(InvocationToken.calls).where(InvocationToken.token_sha256 == token_sha256)
        )
        assert calls is not None
        return calls


def test_calls_get_their_ordinals_up_to_the_cap(db: Database) -> None:
    run_id = queued_run(db)
    register(db, OLD)
    held = claim(db, OLD)
    live_token(db, "a" * 64, run_id, held.lease_generation)
    live_token(db, "b" * 64, run_id, held.lease_generation)

    assert [take(db, "a" * 64) for _ in range(CAP + 1)] == [1, 2, 3, CallRefused.CAP_REACHED]
    assert take(db, "b" * 64) == 1, "each token (attempt) counts from 1"
    assert (counted(db, "a" * 64), counted(db, "b" * 64)) == (CAP, 1)
    assert take(db, "c" * 64) == CallRefused.UNKNOWN


def test_a_token_revoked_after_the_check_is_refused_by_the_count(db: Database) -> None:
    run_id = queued_run(db)
    register(db, OLD)
    held = claim(db, OLD)
    live_token(db, "a" * 64, run_id, held.lease_generation)
    assert take(db, "a" * 64) == 1

    with db.session() as session:  # the run ends between the gateway's check and its count
        gateway_store.revoke_for(session, run_id, held.lease_generation)

    assert take(db, "a" * 64) == CallRefused.REVOKED
    assert counted(db, "a" * 64) == 1, "a refused call is not counted"


def test_a_token_superseded_after_the_check_is_refused_by_the_count(db: Database) -> None:
    """The run went to a new attempt between the check and the count (a takeover revokes
    the old tokens too; here only the generation moves, so the count's fencing is what
    refuses)."""
    run_id = queued_run(db)
    register(db, OLD)
    stale = claim(db, OLD)
    live_token(db, "a" * 64, run_id, stale.lease_generation)
    assert take(db, "a" * 64) == 1

    with db.session() as session:
        session.execute(
            update(Invocation)
            .where(Invocation.id == run_id)
            .values(lease_generation=Invocation.lease_generation + 1)
        )

    assert take(db, "a" * 64) == CallRefused.SUPERSEDED
    assert counted(db, "a" * 64) == 1


def test_a_token_expired_by_the_count_is_refused(db: Database) -> None:
    run_id = queued_run(db)
    register(db, OLD)
    held = claim(db, OLD)
    live_token(db, "a" * 64, run_id, held.lease_generation)
    with db.session() as session:
        token = session.get(InvocationToken, "a" * 64)
        assert token is not None
        expires = token.expires_at

    with db.session() as session:
        late = gateway_store.take_call(session, "a" * 64, CAP, expires + timedelta(seconds=1))
    assert late == CallRefused.EXPIRED
    assert counted(db, "a" * 64) == 0
