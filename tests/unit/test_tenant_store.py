"""Tenants in the store (SQLite, no Docker): the 0012 migration of existing rows, key
checks, and the per-tenant cap on concurrent runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from executor.errors import MissingScope, NotAuthenticated, NotFound
from executor.statuses import InvocationStatus, Scope
from executor.store import claims as claim_store
from executor.store import nodes as node_store
from executor.store import outcomes as outcome_store
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import (
    Activation,
    ApiKey,
    Event,
    Invocation,
    Plugin,
    PluginVersion,
    Tenant,
    utcnow,
)
from executor.tenancy import access as access_module
from executor.tenancy.access import (
    Authenticator,
    Caller,
    authenticate,
    mint_key,
    operator_caller,
)
from executor.tenancy.usage import KeyUsage
from executor.tokens import hash_token
from tests.tenant_migration import check_old_rows_move_to_the_default_tenant

OPERATOR_KEY = "pe_op_unit-test-operator-key"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate()
    return database


def test_rows_from_before_tenants_move_to_the_default_tenant(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    check_old_rows_move_to_the_default_tenant(database)
    database.dispose()


def _key(db: Database, expires_at: datetime | None = None) -> str:
    secret = mint_key()
    with db.session() as session:
        session.add(Tenant(id="acme"))
        session.flush()
        tenant_store.add_key(
            session,
            "acme",
            name="k",
            key_sha256=hash_token(secret),
            scopes=[Scope.LOGS_READ],
            expires_at=expires_at,
        )
    return secret


def test_a_tenant_key_acts_on_its_own_tenant_with_its_scopes(db: Database) -> None:
    secret = _key(db)
    caller = authenticate(db, OPERATOR_KEY, secret, None)
    assert caller.tenant_id == "acme" and caller.scopes == {"logs:read"}
    caller.require("logs:read")
    with pytest.raises(MissingScope, match="plugins:read"):
        caller.require("plugins:read")
    with pytest.raises(MissingScope, match="only the operator key acts on another tenant"):
        authenticate(db, OPERATOR_KEY, secret, "default")


def test_unknown_revoked_and_expired_keys_are_refused(db: Database) -> None:
    secret = _key(db, expires_at=utcnow() - timedelta(seconds=1))
    for presented in (None, "", "pe_key_unknown", secret):
        with pytest.raises(NotAuthenticated):
            authenticate(db, OPERATOR_KEY, presented, None)
    with db.session() as session:
        key = session.scalars(select(ApiKey)).one()
        key.expires_at = None
        tenant_store.revoke_key(session, "acme", key.id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        authenticate(db, OPERATOR_KEY, secret, None)


def test_the_operator_acts_on_the_tenant_it_names(db: Database) -> None:
    assert authenticate(db, OPERATOR_KEY, OPERATOR_KEY, None).tenant_id == "default"
    with pytest.raises(NotFound):
        authenticate(db, OPERATOR_KEY, OPERATOR_KEY, "nobody")
    operator = authenticate(db, OPERATOR_KEY, OPERATOR_KEY, "default")
    assert operator.is_operator
    operator.require("admin")


def _queue(db: Database, tenant: str, count: int) -> None:
    with db.session() as session:
        plugin = Plugin(name=f"p-{tenant}", tenant_id=tenant)
        session.add(plugin)
        session.flush()
        version = PluginVersion(plugin_id=plugin.id, number=1, source_sha256="x", source=b"")
        event = Event(type="onSubmit", project_id=f"proj-{tenant}", tenant_id=tenant)
        session.add_all([version, event, Activation(plugin_id=plugin.id, project_id="p")])
        session.flush()
        for _ in range(count):
            session.add(
                Invocation(
                    tenant_id=tenant,
                    event_id=event.id,
                    plugin_id=plugin.id,
                    version_id=version.id,
                    plugin_name=plugin.name,
                    version_number=1,
                    project_id=f"proj-{tenant}-{_}",
                    event_type="onSubmit",
                )
            )


NODE = claim_store.NodeClaim("node-1", frozenset({"runc"}), {}, "runc")


def test_concurrent_runs_stop_at_the_tenant_quota_and_resume(db: Database) -> None:
    with db.session() as session:
        session.add(Tenant(id="capped", max_concurrent_runs=1))
    _queue(db, "capped", 3)
    _queue(db, "default", 2)
    limits = claim_store.ClaimLimits(per_plugin=10, per_project=10, per_tenant=None)
    with db.session() as session:  # only a registered, live node claims
        info = node_store.NodeInfo(NODE.node_id, "me", "20.10", ["runc"], 10, 0)
        node_store.register(session, info)
    with db.session() as session:
        claimed = claim_store.claim(session, "me", 10, 30, limits, NODE)
        assert sorted(i.tenant_id for i in claimed) == ["capped", "default", "default"]
        first = next(i for i in claimed if i.tenant_id == "capped")
    with db.session() as session:
        assert claim_store.claim(session, "me", 10, 30, limits, NODE) == []
        outcome_store.finish(
            session, first.id, first.lease_generation, status=InvocationStatus.SUCCEEDED
        )
    with db.session() as session:
        claimed = claim_store.claim(session, "me", 10, 30, limits, NODE)
        assert [i.tenant_id for i in claimed] == ["capped"]


def test_caller_of_a_key_has_no_operator_powers() -> None:
    caller = Caller("acme", "key:k1", frozenset({"admin"}), "k1")
    assert not caller.is_operator
    with pytest.raises(MissingScope, match="operator"):
        caller.require("operator")


class FakeClock:
    """Monotonic seconds and wall time that move only when a test says so."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.wall = utcnow()

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)


def _authenticator(db: Database, clock: FakeClock, ttl_s: float = 5.0) -> Authenticator:
    return Authenticator(
        db, OPERATOR_KEY, ttl_s, clock=lambda: clock.seconds, now=lambda: clock.wall
    )


def _revoke_in_the_store(db: Database) -> str:
    """Revoke the one key as another executor process sharing the store would."""
    with db.session() as session:
        key = session.scalars(select(ApiKey)).one()
        tenant_store.revoke_key(session, key.tenant_id, key.id)
        return key.id


def test_an_accepted_key_is_trusted_for_the_cache_time_then_checked_again(db: Database) -> None:
    clock = FakeClock()
    authenticator = _authenticator(db, clock)
    secret = _key(db)
    assert authenticator.known(secret, None) is None  # never seen: the store decides
    caller = authenticator.verify(secret, None)
    assert authenticator.known(secret, None) == caller
    _revoke_in_the_store(db)
    clock.advance(4.9)
    assert authenticator.known(secret, None) == caller  # another process's revocation
    clock.advance(0.1)
    assert authenticator.known(secret, None) is None
    with pytest.raises(NotAuthenticated, match="revoked"):
        authenticator.verify(secret, None)


def test_a_key_revoked_through_this_process_is_refused_at_once(db: Database) -> None:
    authenticator = _authenticator(db, FakeClock())
    secret = _key(db)
    authenticator.verify(secret, None)
    authenticator.forget(_revoke_in_the_store(db))
    assert authenticator.known(secret, None) is None
    with pytest.raises(NotAuthenticated, match="revoked"):
        authenticator.verify(secret, None)


def test_a_check_that_read_the_store_before_a_revocation_is_not_remembered(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticator = _authenticator(db, FakeClock())
    secret = _key(db)
    with db.session() as session:
        key_id = session.scalars(select(ApiKey.id)).one()
    real_verify = access_module._verify

    def revoked_meanwhile(
        db: Database, operator_key: str, presented: str | None, tenant: str | None
    ) -> tuple[Caller, datetime | None]:
        answer = real_verify(db, operator_key, presented, tenant)  # read while valid...
        authenticator.forget(key_id)  # ...and revoked before the check returns
        return answer

    monkeypatch.setattr(access_module, "_verify", revoked_meanwhile)
    authenticator.verify(secret, None)
    assert authenticator.known(secret, None) is None


def test_a_remembered_key_is_refused_from_its_expiry_on(db: Database) -> None:
    clock = FakeClock()
    authenticator = _authenticator(db, clock)
    secret = _key(db, expires_at=clock.wall + timedelta(seconds=2))
    caller = authenticator.verify(secret, None)
    clock.advance(1)
    assert authenticator.known(secret, None) == caller
    clock.advance(1)
    assert authenticator.known(secret, None) is None


def test_a_remembered_key_names_only_its_own_tenant(db: Database) -> None:
    authenticator = _authenticator(db, FakeClock())
    secret = _key(db)
    authenticator.verify(secret, None)
    assert authenticator.known(secret, "acme") is not None
    assert authenticator.known(secret, "default") is None
    with pytest.raises(MissingScope, match="only the operator key acts on another tenant"):
        authenticator.verify(secret, "default")


def test_no_cache_time_asks_the_store_every_time(db: Database) -> None:
    authenticator = _authenticator(db, FakeClock(), ttl_s=0)
    secret = _key(db)
    authenticator.verify(secret, None)
    assert authenticator.known(secret, None) is None


def test_the_operator_is_remembered_per_tenant_that_exists(db: Database) -> None:
    authenticator = _authenticator(db, FakeClock())
    assert authenticator.known(OPERATOR_KEY, None) is None
    assert authenticator.verify(OPERATOR_KEY, None).tenant_id == "default"
    assert authenticator.known(OPERATOR_KEY, None) == operator_caller("default")
    with pytest.raises(NotFound):
        authenticator.verify(OPERATOR_KEY, "nobody")
    assert authenticator.known(OPERATOR_KEY, "nobody") is None
    assert authenticator.known("pe_op_not-the-operator-key", None) is None


def _last_used(db: Database) -> datetime | None:
    with db.session() as session:
        return session.scalars(select(ApiKey)).one().last_used_at


def test_a_keys_use_is_written_in_the_background_at_most_once_a_minute(db: Database) -> None:
    clock = FakeClock()
    usage = KeyUsage(db, interval_s=60, now=lambda: clock.wall)
    authenticator = Authenticator(
        db, OPERATOR_KEY, 5.0, clock=lambda: clock.seconds, now=lambda: clock.wall, usage=usage
    )
    secret = _key(db)
    authenticator.verify(secret, None)  # from the store
    first_use = clock.wall
    assert _last_used(db) is None  # only noted: the request wrote nothing
    usage.flush()
    assert _last_used(db) == first_use
    clock.advance(30)
    assert authenticator.known(secret, None) is None  # past the key cache: the store again
    authenticator.verify(secret, None)
    assert authenticator.known(secret, None) is not None
    usage.flush()
    assert _last_used(db) == first_use  # within the minute: nothing more to write
    clock.advance(31)
    assert authenticator.known(secret, None) is None
    authenticator.verify(secret, None)
    usage.flush()
    assert _last_used(db) == clock.wall
    authenticator.verify(OPERATOR_KEY, None)  # the operator key is no stored key
    usage.flush()
    assert _last_used(db) == clock.wall


def test_the_usage_thread_writes_what_requests_noted(db: Database) -> None:
    usage = KeyUsage(db)
    usage.start()
    authenticator = Authenticator(db, OPERATOR_KEY, 5.0, usage=usage)
    authenticator.verify(_key(db), None)
    usage.stop()  # writes what is still noted
    assert _last_used(db) is not None


def test_an_older_use_never_replaces_a_newer_one(db: Database) -> None:
    _key(db)
    with db.session() as session:
        key_id = session.scalars(select(ApiKey.id)).one()
    newer, older = utcnow(), utcnow() - timedelta(minutes=5)
    for at in (newer, older):
        with db.session() as session:
            tenant_store.mark_keys_used(session, {key_id: at})
    assert _last_used(db) == newer
