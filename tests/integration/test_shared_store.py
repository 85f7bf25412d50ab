"""What API processes share through PostgreSQL, raced from several connections pools (one
``Database`` each, as separate processes have): key buckets stay exact, a ticket is used
once, a revocation is announced to listeners at its commit."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest
from sqlalchemy import text

from executor.api.graphql.uploads import UploadDesk
from executor.errors import Conflict, RateLimited
from executor.store import buckets
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.listen import StoreListener
from executor.store.tables import ApiKey, Tenant
from executor.tenancy.access import operator_caller
from executor.tenancy.ratelimit import StoreLimiter
from tests.conftest import make_settings, start_server, stop_server
from tests.integration.test_hot_paths import statements, verb_and_table
from tests.integration.test_nodes import wait_for

CAPACITY = 50
NO_REFILL = 1e-9  # nothing refills while the test runs: grants are decided by tokens alone
THREADS = 8


@pytest.fixture
def stores(postgres_url: str) -> Iterator[tuple[Database, Database]]:
    first, second = Database(postgres_url), Database(postgres_url)
    first.migrate()
    with first.session() as session:
        session.add(Tenant(id="acme"))
    yield first, second
    first.dispose()
    second.dispose()


def race(work: Callable[[int], bool], rounds: int) -> int:
    """How many of ``THREADS * rounds`` calls of ``work`` (given the thread's number)
    returned True, all threads let go at once."""
    start = threading.Barrier(THREADS)
    wins: list[bool] = []

    def run(n: int) -> None:
        start.wait()
        wins.extend(work(n) for _ in range(rounds))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(wins)


def test_racing_takes_from_two_pools_grant_exactly_the_capacity(
    stores: tuple[Database, Database],
) -> None:
    def take(n: int) -> bool:
        with stores[n % 2].autocommit_connection() as connection:
            taken = buckets.take(connection, "k1", "requests", 1.0, CAPACITY, NO_REFILL)
        return taken.granted

    assert race(take, rounds=CAPACITY // THREADS + 3) == CAPACITY
    with stores[0].autocommit_connection() as connection:
        persistence = connection.scalar(
            text("SELECT relpersistence FROM pg_class WHERE relname = 'key_buckets'")
        )
    assert persistence == "u"  # UNLOGGED: a take's commit waits for no WAL flush


def test_limiters_of_two_processes_refuse_past_the_shared_limit(
    stores: tuple[Database, Database],
) -> None:
    limiters = [StoreLimiter(db, 2, 1024 * 1024) for db in stores]
    limiters[0].request("k1")
    limiters[1].request("k1")
    with pytest.raises(RateLimited, match="sent more than 2 requests a minute"):
        limiters[0].request("k1")


def test_a_ticket_from_one_pool_is_filled_and_taken_once_through_the_other(
    stores: tuple[Database, Database],
) -> None:
    acme = operator_caller("acme")
    desks = [UploadDesk(db) for db in stores]
    ticket = desks[0].issue(acme, "p", update=False)
    desks[1].receive(acme, ticket, b"zip")

    def take(n: int) -> bool:
        try:
            return desks[n % 2].take(acme, "p", update=False) == b"zip"
        except Conflict:
            return False

    assert race(take, rounds=1) == 1


def test_a_revocation_is_announced_to_listeners_at_its_commit(
    stores: tuple[Database, Database], postgres_url: str
) -> None:
    heard: queue.Queue[str | None] = queue.Queue()
    listener = StoreListener(postgres_url, {tenant_store.KEY_CHANNEL: heard.put})
    listener.start()
    try:
        assert heard.get(timeout=60) is None  # connected: anything may have been missed
        with stores[1].session() as session:
            key = tenant_store.add_key(
                session, "acme", name="k", key_sha256="0" * 64, scopes=[], expires_at=None
            )
            key_id = key.id
        with stores[1].session() as session:
            tenant_store.revoke_key(session, "acme", key_id)
            assert heard.empty()  # not before the commit
        assert heard.get(timeout=60) == key_id
    finally:
        listener.stop()


@pytest.mark.docker
def test_on_postgres_a_tenant_keys_request_costs_one_autocommitted_statement_more(
    postgres_url: str, docker_client: docker.DockerClient, runtime_image: str, tmp_path: Path
) -> None:
    """The shared rate limit's whole cost per request: the bucket's upsert, outside any
    transaction (one round trip); the key itself is not read again (cached, and trusted
    while revocations are heard)."""
    entry = start_server(
        make_settings(tmp_path, database_url=postgres_url, dispatch=False), docker_client
    )
    server = entry[0]
    try:
        assert server.service.store_listener is not None
        assert server.service.store_listener.listening.wait(60)
        assert server.api.post("/v1/tenants", json={"name": "acme"}).status_code == 201
        made = server.api.post("/v1/tenants/acme/keys", json={"name": "k", "scopes": ["admin"]})
        key = made.json()
        headers = {"Authorization": f"Bearer {key['key']}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as tenant:
            assert tenant.get("/v1/tenants/acme/keys").status_code == 200  # now cached
            # Its use is written in the background once a minute: wait for it, so that
            # no write of it falls among the statements watched.
            wait_for("the key's last use", lambda: last_used(server.service.db, key["id"]))
            with statements(server, transactions=True) as by_tenant:
                assert tenant.get("/v1/tenants/acme/keys").status_code == 200
        operator = {"X-Tenant": "acme"}
        assert server.api.get("/v1/tenants/acme/keys", headers=operator).status_code == 200
        with statements(server, transactions=True) as by_operator:
            assert server.api.get("/v1/tenants/acme/keys", headers=operator).status_code == 200
        # A request's session may commit after its answer went out: compare statements.
        markers = ("BEGIN", "COMMIT")
        tenant_statements = [verb_and_table(s) for s in by_tenant if s not in markers]
        assert tenant_statements == [
            ("INSERT", "key_buckets"),
            *[verb_and_table(s) for s in by_operator if s not in markers],
        ], by_tenant
        upsert = next(n for n, s in enumerate(by_tenant) if s not in markers)
        assert "BEGIN" not in by_tenant[:upsert], by_tenant  # autocommitted: one round trip
        assert by_tenant[upsert + 1 : upsert + 2] != ["COMMIT"], by_tenant
    finally:
        stop_server(*entry)


def last_used(db: Database, key_id: str) -> bool:
    with db.session() as session:
        key = session.get(ApiKey, key_id)
        return key is not None and key.last_used_at is not None
