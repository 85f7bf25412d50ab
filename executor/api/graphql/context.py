"""Who calls the GraphQL API, and what a resolver gets: the service, the caller, the desk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from executor.api.graphql.uploads import UploadDesk
from executor.errors import NotAuthenticated
from executor.service.wiring import ExecutorService
from executor.statuses import Scope
from executor.tenancy.access import Caller, authenticate

__all__ = [
    "KILI_KEY_PREFIX",
    "GraphQLNotAuthenticated",
    "RequestContext",
    "graphql_caller",
    "presented_key",
]

# The Kili SDK sends ``Authorization: X-API-Key: <key>``; ``Bearer <key>`` is accepted too.
KILI_KEY_PREFIX = "X-API-Key:"


class GraphQLNotAuthenticated(NotAuthenticated):
    """Missing or unknown API key: send 'Authorization: X-API-Key: <key>'."""

    def to_dict(self) -> dict[str, Any]:
        # A 401 whose body has no GraphQL "errors" makes the Kili SDK retry for minutes
        # ("Unauthorized for url"); with them it raises its GraphQLError with the message.
        error = {"message": self.message, "extensions": {"code": self.code}}
        return {**super().to_dict(), "errors": [error]}


def presented_key(authorization: str | None) -> str | None:
    """The API key in an Authorization header, in the Kili SDK's form or as a bearer."""
    if not authorization:
        return None
    value = authorization.strip()
    for prefix in (KILI_KEY_PREFIX, "Bearer "):
        if value[: len(prefix)].lower() == prefix.lower():
            return value[len(prefix) :].strip() or None
    return value


def graphql_caller(
    service: ExecutorService, authorization: str | None, *, counted: bool = True
) -> Caller:
    """The caller a GraphQL request's key stands for (401 as in REST, in a body the Kili
    SDK reads), counted as one request against its key's rate unless not ``counted`` (a
    GraphQL document is charged by its cost once it is read)."""
    key = presented_key(authorization)
    if key is None:
        raise GraphQLNotAuthenticated(
            "missing API key: send 'Authorization: X-API-Key: <key>' (the Kili SDK's "
            "api_key) with an executor API key"
        )
    try:
        caller = authenticate(service.db, service.operator_key, key, None)
    except NotAuthenticated as exc:
        raise GraphQLNotAuthenticated(exc.message) from exc
    if counted and caller.key_id is not None:
        service.limiter.request(caller.key_id)
    return caller


@dataclass
class RequestContext:
    """One GraphQL request's context; ``upload_url`` is where the desk's tickets are PUT."""

    service: ExecutorService
    desk: UploadDesk
    authenticated: Caller
    upload_url: str

    def caller(self, scope: Scope) -> Caller:
        """The caller if it has ``scope`` (MissingScope as in REST)."""
        self.authenticated.require(scope.value)
        return self.authenticated
