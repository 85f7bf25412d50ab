"""Who is calling and what they may do: API keys, scopes, and the caller they resolve to.

The operator key (Settings) may do everything, on any tenant: it acts on the tenant a
request names in the ``X-Tenant`` header, else on ``default``. Every other key belongs to
one tenant and may do what its scopes allow, on that tenant only.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from executor.errors import MissingScope, NotAuthenticated
from executor.statuses import Scope
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import DEFAULT_TENANT, utcnow
from executor.tenancy.usage import KeyUsage
from executor.tokens import hash_token

__all__ = [
    "KEY_PREFIX",
    "OPERATOR",
    "Authenticator",
    "Caller",
    "authenticate",
    "mint_key",
    "operator_caller",
]

KEY_PREFIX = "pe_key_"
KEY_BYTES = 32
OPERATOR = "operator"  # the actor name of the operator key, and the scope only it has


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    tenant_id: str
    actor: str  # "operator" or "key:<key id>", as the audit trail names it
    scopes: frozenset[str]
    key_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.key_id is None

    def may(self, scope: str) -> bool:
        """Whether the caller has ``scope`` (the operator has them all)."""
        return self.is_operator or scope in self.scopes

    def require(self, scope: str) -> None:
        """MissingScope (403) unless the caller has ``scope``."""
        if self.may(scope):
            return
        if scope == OPERATOR:
            raise MissingScope(scope, "only the operator key may do this: ask your operator")
        raise MissingScope(scope)


def operator_caller(tenant_id: str = DEFAULT_TENANT) -> Caller:
    """The operator acting on ``tenant_id`` (in-process tools call the catalog as it)."""
    return Caller(tenant_id, OPERATOR, frozenset({OPERATOR, *Scope}))


def mint_key() -> str:
    """A new random tenant API key (shown once; only its SHA-256 is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def authenticate(
    db: Database, operator_key: str, presented: str | None, tenant: str | None
) -> Caller:
    """The caller a presented key stands for: NotAuthenticated (401) for a missing,
    unknown, revoked or expired key; NotFound (404) for a tenant the operator names that
    does not exist; MissingScope (403) for a tenant key naming another tenant."""
    return _verify(db, operator_key, presented, tenant)[0]


def _verify(
    db: Database, operator_key: str, presented: str | None, tenant: str | None
) -> tuple[Caller, datetime | None]:
    """``authenticate``, and when the key expires (None: never, or the operator key)."""
    if not presented:
        raise NotAuthenticated("missing API key: send 'Authorization: Bearer <key>'")
    with db.session() as session:
        if hmac.compare_digest(presented.encode(), operator_key.encode()):
            tenant_id = tenant or DEFAULT_TENANT
            tenant_store.get_tenant(session, tenant_id)
            return operator_caller(tenant_id), None
        key = tenant_store.key_by_hash(session, hash_token(presented))
        if key is None:
            raise NotAuthenticated("unknown API key: check the key you were given")
        if key.revoked_at is not None:
            raise NotAuthenticated(f"API key {key.id} was revoked: ask for a new key")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise NotAuthenticated(f"API key {key.id} has expired: ask for a new key")
        if tenant is not None and tenant != key.tenant_id:
            # The same answer whether that tenant exists or not.
            raise MissingScope(
                OPERATOR,
                f"only the operator key acts on another tenant (X-Tenant, --tenant): this key "
                f"acts on its own tenant {key.tenant_id!r}; leave the tenant out",
            )
        caller = Caller(key.tenant_id, f"key:{key.id}", frozenset(key.scopes), key.id)
        return caller, key.expires_at


@dataclass(frozen=True)
class _Verified:
    caller: Caller
    expires_at: datetime | None
    verified_at: float  # on the authenticator's clock


class Authenticator:
    """``authenticate`` for every request, without asking the store each time.

    A key the store accepted is trusted for ``ttl_s`` seconds, and a tenant the operator
    named until it is deleted through this process (``forget_tenant``). Only acceptances
    are remembered, so every refusal comes from the store with its own reason; a remembered
    key is still refused from its expiry time on, and one revoked (``forget``) at once.
    Processes sharing a PostgreSQL store hear each other's revocations (NOTIFY, see
    ``executor.store.listen``), and trust remembered keys only while they hear them
    (``live``): otherwise a key revoked elsewhere would answer 200 until ``ttl_s``.
    """

    def __init__(
        self,
        db: Database,
        operator_key: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        usage: KeyUsage | None = None,
        live: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._live = live  # whether revocations made elsewhere reach ``forget`` now
        self._usage = usage  # notes each tenant key's use ("last used")
        self._operator_key = operator_key
        self._ttl_s = ttl_s
        self._clock = clock  # measures the time a key is trusted
        self._now = now  # the wall time a key's expiry is compared with
        self._keys: dict[str, _Verified] = {}  # by the key's SHA-256, as the store keeps it
        self._tenants: set[str] = set()  # tenants the operator key acted on
        # Counts ``forget`` calls: a check that read the store before a revocation must not
        # remember the key after it.
        self._revocations = 0

    def known(self, presented: str | None, tenant: str | None) -> Caller | None:
        """The caller, if the key was accepted lately and nothing needs the store; None
        otherwise (then call ``verify``). Never touches the store: safe on the event loop."""
        if not presented:
            return None
        if hmac.compare_digest(presented.encode(), self._operator_key.encode()):
            tenant_id = tenant or DEFAULT_TENANT
            return operator_caller(tenant_id) if tenant_id in self._tenants else None
        seen = self._keys.get(hash_token(presented))
        at = self._clock()
        if seen is None or at - seen.verified_at >= self._ttl_s or not self._live():
            return None
        if seen.expires_at is not None and seen.expires_at <= self._now():
            return None
        if tenant is not None and tenant != seen.caller.tenant_id:
            return None
        if self._usage is not None and seen.caller.key_id is not None:  # inline: hot path
            self._usage.used(seen.caller.key_id, at)
        return seen.caller

    def verify(self, presented: str | None, tenant: str | None) -> Caller:
        """``authenticate`` against the store; an accepted key is remembered."""
        revocations, checked_at = self._revocations, self._clock()
        caller, expires_at = _verify(self._db, self._operator_key, presented, tenant)
        if caller.is_operator:
            self._tenants.add(caller.tenant_id)
        elif presented and self._ttl_s > 0 and revocations == self._revocations:
            self._keys[hash_token(presented)] = _Verified(caller, expires_at, checked_at)
        self._note_use(caller)
        return caller

    def _note_use(self, caller: Caller) -> None:
        if self._usage is not None and caller.key_id is not None:
            self._usage.used(caller.key_id, self._clock())

    def forget_tenant(self, tenant_id: str, key_ids: list[str]) -> None:
        """Stop trusting a deleted tenant: the operator's next request on it, and its keys',
        ask the store."""
        self._tenants.discard(tenant_id)
        for key_id in key_ids:
            self.forget(key_id)

    def forget(self, key_id: str) -> None:
        """Stop trusting a key (revoked now): its next request asks the store."""
        self._revocations += 1
        self._keys = {h: v for h, v in self._keys.items() if v.caller.key_id != key_id}

    def forget_all(self) -> None:
        """Stop trusting every remembered key (revocations may have been missed)."""
        self._revocations += 1
        self._keys = {}
