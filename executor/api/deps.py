"""Dependencies of the routes, as ``Annotated`` aliases.

Each route names the scope it needs with one of ``PluginsRead``, ``PluginsWrite``,
``LogsRead``, ``EventsWrite``, ``Admin`` or ``OperatorOnly`` (a ``RequireScope``, which the
route-matrix test reads to know what each route expects).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from executor.identifiers import TenantName
from executor.service.wiring import ExecutorService
from executor.statuses import Scope
from executor.store.db import Session
from executor.tenancy.access import OPERATOR, Caller

__all__ = [
    "Admin",
    "EventsWrite",
    "LogsRead",
    "OperatorOnly",
    "PluginsRead",
    "PluginsWrite",
    "RequireScope",
    "ServiceDep",
    "SessionDep",
    "authorize",
    "bearer",
    "bearer_key",
    "get_service",
    "require_events_write",
]

bearer = HTTPBearer(auto_error=False)


def get_service(request: Request) -> ExecutorService:
    service: ExecutorService = request.app.state.service
    return service


async def _service_dependency(request: Request) -> ExecutorService:
    # async: a plain function dependency would cost every request a hop to a worker thread.
    return get_service(request)


ServiceDep = Annotated[ExecutorService, Depends(_service_dependency)]


def get_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
TenantHeader = Annotated[
    TenantName | None,
    Header(description="Operator key only: the tenant to act on (default: 'default')."),
]


async def bearer_key(credentials: BearerDep) -> str | None:
    """The key of the request's ``Authorization: Bearer`` header (None without one)."""
    return credentials.credentials if credentials is not None else None


BearerKey = Annotated[str | None, Depends(bearer_key)]


async def authorize(
    service: ExecutorService, presented: str | None, tenant: str | None, scope: str
) -> Caller:
    """The one decision on a request's key, for every route and the event fast path: the
    caller (401 without a valid key), counted once against its key's rate (429 past it),
    if it has ``scope`` (403 ``missing_scope`` if not, after it was counted).

    On the event loop: a key accepted lately costs no store query and no thread hop; only
    a key the authenticator does not know yet is checked in the store, in a thread (and
    counted there, when its bucket is in the store: one hop)."""
    caller = service.authenticator.known(presented, tenant)
    if caller is not None:
        await _count_request(service, caller)
    else:
        caller = await run_in_threadpool(_verify_and_count, service, presented, tenant)
    caller.require(scope)
    return caller


def _verify_and_count(
    service: ExecutorService, presented: str | None, tenant: str | None
) -> Caller:
    caller = service.authenticator.verify(presented, tenant)
    if caller.key_id is not None:
        service.limiter.request(caller.key_id)
    return caller


async def _count_request(service: ExecutorService, caller: Caller) -> None:
    """Count the request against its key's rate (429 past it); the operator's is not. A
    bucket in the store is taken in a thread: one statement, off the event loop."""
    if caller.key_id is None:
        return
    if service.limiter.in_store:
        await run_in_threadpool(service.limiter.request, caller.key_id)
    else:
        service.limiter.request(caller.key_id)


class RequireScope:
    """A dependency: the caller, if it has ``scope`` (``authorize``)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(  # async: a known key costs no thread hop
        self, service: ServiceDep, presented: BearerKey, x_tenant: TenantHeader = None
    ) -> Caller:
        return await authorize(service, presented, x_tenant, self.scope)


PluginsRead = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_READ))]
PluginsWrite = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_WRITE))]
LogsRead = Annotated[Caller, Depends(RequireScope(Scope.LOGS_READ))]
# The event route's fast path calls its route's dependency itself (executor.api.routes.events).
require_events_write = RequireScope(Scope.EVENTS_WRITE)
EventsWrite = Annotated[Caller, Depends(require_events_write)]
Admin = Annotated[Caller, Depends(RequireScope(Scope.ADMIN))]
OperatorOnly = Annotated[Caller, Depends(RequireScope(OPERATOR))]
