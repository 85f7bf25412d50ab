"""What API processes share through the store (SQLite here; PostgreSQL and two processes in
tests/integration/test_api_processes.py): upload tickets, key buckets, key revocations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from executor.api.graphql import uploads
from executor.api.graphql.uploads import MAX_TICKETS_PER_TENANT, UploadDesk
from executor.errors import Conflict, NotFound, RateLimited
from executor.statuses import Scope
from executor.store import buckets
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import KeyBucket, Tenant, UploadTicket
from executor.tenancy.access import Authenticator, mint_key, operator_caller
from executor.tenancy.ratelimit import StoreLimiter
from executor.tokens import hash_token

OPERATOR_KEY = "pe_op_unit-test-operator-key"
# Slow enough that nothing refills while a test runs: what is granted is decided by tokens.
NO_REFILL = 1e-9


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    with database.session() as session:
        session.add_all([Tenant(id="acme"), Tenant(id="globex")])
    yield database
    database.dispose()


def test_an_upload_ticket_takes_one_archive_of_its_tenant(db: Database) -> None:
    desk = UploadDesk(db)
    acme = operator_caller("acme")
    ticket = desk.issue(acme, "p", update=False)
    with pytest.raises(NotFound, match="unknown or expired"):
        desk.receive(operator_caller("globex"), ticket, b"zip")
    desk.receive(acme, ticket, b"zip")
    with pytest.raises(NotFound, match="was used already"):  # one archive per ticket
        desk.receive(acme, ticket, b"other")
    with pytest.raises(Conflict, match="no archive was uploaded for plugin 'p'"):
        desk.take(operator_caller("globex"), "p", update=False)
    with pytest.raises(Conflict, match="call generateUpdateUrl"):
        desk.take(acme, "p", update=True)
    assert desk.take(acme, "p", update=False) == b"zip"
    with pytest.raises(Conflict, match="call createPlugin"):  # used up
        desk.take(acme, "p", update=False)
    with pytest.raises(NotFound, match="unknown or expired"):
        desk.receive(acme, ticket, b"again")


def test_the_store_keeps_a_tickets_hash_never_the_ticket(db: Database) -> None:
    ticket = UploadDesk(db).issue(operator_caller("acme"), "p", update=False)
    with db.session() as session:
        assert list(session.scalars(select(UploadTicket.ticket_sha256))) == [hash_token(ticket)]


def test_an_expired_ticket_takes_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    desk = UploadDesk(db)
    acme = operator_caller("acme")
    monkeypatch.setattr(uploads, "TICKET_TTL_S", -1.0)  # expired as it is made
    ticket = desk.issue(acme, "p", update=False)
    with pytest.raises(NotFound, match="unknown or expired"):
        desk.receive(acme, ticket, b"zip")
    with db.session() as session:
        session.execute(update(UploadTicket).values(archive=b"zip"))  # as if PUT in time
    with pytest.raises(Conflict, match="no archive was uploaded"):
        desk.take(acme, "p", update=False)


def test_a_tenants_oldest_tickets_are_dropped_past_the_cap(db: Database) -> None:
    desk = UploadDesk(db)
    acme = operator_caller("acme")
    tickets = [desk.issue(acme, f"p{n}", update=False) for n in range(MAX_TICKETS_PER_TENANT + 1)]
    globex = operator_caller("globex")
    other = desk.issue(globex, "p0", update=False)
    with pytest.raises(NotFound):
        desk.receive(acme, tickets[0], b"zip")
    for ticket in tickets[1:]:
        desk.receive(acme, ticket, b"zip")
    desk.receive(globex, other, b"zip")


def test_a_bucket_grants_its_capacity_then_refuses_with_the_tokens_there(db: Database) -> None:
    def take(amount: float, key: str = "k1") -> buckets.Taken:
        with db.autocommit_connection() as connection:
            return buckets.take(connection, key, "requests", amount, 3.0, NO_REFILL)

    assert [take(1).granted for _ in range(3)] == [True, True, True]
    refused = take(1)
    assert not refused.granted and refused.tokens == pytest.approx(0.0, abs=1e-6)
    other = take(2, "k2")  # its own bucket
    assert other.granted and other.tokens == pytest.approx(1.0)
    assert not take(5, "k3").granted  # more than it holds: never, even full


def test_a_bucket_refills_by_the_time_since_its_last_take(db: Database) -> None:
    with db.autocommit_connection() as connection:
        for _ in range(2):
            buckets.take(connection, "k1", "uploads", 50.0, 100.0, 1.0)
        assert not buckets.take(connection, "k1", "uploads", 50.0, 100.0, 1.0).granted
        # 30 s ago on the database's clock: 30 tokens back, never past the capacity.
        connection.execute(update(KeyBucket).values(updated_s=KeyBucket.updated_s - 30.0))
        assert buckets.take(connection, "k1", "uploads", 30.0, 100.0, 1.0).granted
        connection.execute(update(KeyBucket).values(updated_s=KeyBucket.updated_s - 1e6))
        taken = buckets.take(connection, "k1", "uploads", 10.0, 100.0, 1.0)
        assert taken.granted and taken.tokens == pytest.approx(90.0)


def test_limiters_on_one_store_share_each_keys_limits(db: Database) -> None:
    """Two limiters (two processes) on one store: a key gets its limits once."""
    first, second = (StoreLimiter(db, 1, 1024 * 1024) for _ in range(2))
    first.request("k1")
    with pytest.raises(RateLimited, match="sent more than 1 requests a minute") as refused:
        second.request("k1")
    assert 0 < refused.value.retry_after_s <= 60
    second.request("k2")
    first.upload("k1", 600 * 1024)
    with pytest.raises(RateLimited, match="uploaded more than 1048576 bytes") as refused:
        second.upload("k1", 600 * 1024)
    assert refused.value.retry_after_s > 600  # 176 KiB at 1 MiB an hour


def test_forget_all_and_a_silent_feed_stop_trusting_remembered_keys(db: Database) -> None:
    secret = mint_key()
    with db.session() as session:
        tenant_store.add_key(
            session,
            "acme",
            name="k",
            key_sha256=hash_token(secret),
            scopes=[Scope.LOGS_READ],
            expires_at=None,
        )
    live = True
    authenticator = Authenticator(db, OPERATOR_KEY, 3600.0, live=lambda: live)
    authenticator.verify(secret, None)
    assert authenticator.known(secret, None) is not None
    live = False  # revocations made elsewhere would go unheard: ask the store
    assert authenticator.known(secret, None) is None
    live = True
    authenticator.forget_all()
    assert authenticator.known(secret, None) is None
