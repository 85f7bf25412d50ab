"""Who is calling and what they may do: API keys, scopes, and the caller they resolve to.

The operator key (Settings) may do everything, on any tenant: it acts on the tenant a
request names in the ``X-Tenant`` header, else on ``default``. Every other key belongs to
one tenant and may do what its scopes allow, on that tenant only.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from executor.errors import MissingScope, NotAuthenticated, NotFound
from executor.statuses import Scope
from executor.store import tenants as tenant_store
from executor.store.db import Database
from executor.store.tables import DEFAULT_TENANT, utcnow
from executor.tokens import hash_token

__all__ = [
    "KEY_PREFIX",
    "OPERATOR",
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

    def require(self, scope: str) -> None:
        """MissingScope (403) unless the caller has ``scope`` (the operator has them all)."""
        if self.is_operator or scope in self.scopes:
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
    unknown, revoked or expired key; NotFound (404) for a tenant the key cannot act on."""
    if not presented:
        raise NotAuthenticated("missing API key: send 'Authorization: Bearer <key>'")
    with db.session() as session:
        if hmac.compare_digest(presented.encode(), operator_key.encode()):
            tenant_id = tenant or DEFAULT_TENANT
            tenant_store.get_tenant(session, tenant_id)
            return operator_caller(tenant_id)
        key = tenant_store.key_by_hash(session, hash_token(presented))
        if key is None:
            raise NotAuthenticated("unknown API key: check the key you were given")
        if key.revoked_at is not None:
            raise NotAuthenticated(f"API key {key.id} was revoked: ask for a new key")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise NotAuthenticated(f"API key {key.id} has expired: ask for a new key")
        if tenant is not None and tenant != key.tenant_id:
            raise NotFound(f"no tenant {tenant!r}: a key acts on its own tenant only")
        return Caller(key.tenant_id, f"key:{key.id}", frozenset(key.scopes), key.id)
