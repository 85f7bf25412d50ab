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
    "CallerDep",
    "EventsWrite",
    "LogsRead",
    "OperatorOnly",
    "PluginsRead",
    "PluginsWrite",
    "RequireScope",
    "ServiceDep",
    "SessionDep",
    "count_request",
    "get_service",
]

_bearer = HTTPBearer(auto_error=False)


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


async def get_caller(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_tenant: Annotated[
        TenantName | None,
        Header(
            description="Operator key only: the tenant to act on (default: 'default').",
        ),
    ] = None,
) -> Caller:
    """The caller of the request (401 without a valid key), counted against its key's rate.

    On the event loop: a key accepted lately costs no store query and no thread hop; only
    a key the authenticator does not know yet is checked in the store, in a thread (and
    counted there, when its bucket is in the store: one hop)."""
    presented = credentials.credentials if credentials is not None else None
    authenticator = service.authenticator
    caller = authenticator.known(presented, x_tenant)
    if caller is not None:
        await count_request(service, caller)
        return caller
    return await run_in_threadpool(_verify_and_count, service, presented, x_tenant)


def _verify_and_count(
    service: ExecutorService, presented: str | None, tenant: str | None
) -> Caller:
    caller = service.authenticator.verify(presented, tenant)
    if caller.key_id is not None:
        service.limiter.request(caller.key_id)
    return caller


async def count_request(service: ExecutorService, caller: Caller) -> None:
    """Count the request against its key's rate (429 past it); the operator's is not. A
    bucket in the store is taken in a thread: one statement, off the event loop."""
    if caller.key_id is None:
        return
    if service.limiter.in_store:
        await run_in_threadpool(service.limiter.request, caller.key_id)
    else:
        service.limiter.request(caller.key_id)


CallerDep = Annotated[Caller, Depends(get_caller)]


class RequireScope:
    """A dependency: the caller, if it has ``scope`` (403 ``missing_scope`` if not)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, caller: CallerDep) -> Caller:  # async: no thread for a set lookup
        caller.require(self.scope)
        return caller


PluginsRead = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_READ))]
PluginsWrite = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_WRITE))]
LogsRead = Annotated[Caller, Depends(RequireScope(Scope.LOGS_READ))]
EventsWrite = Annotated[Caller, Depends(RequireScope(Scope.EVENTS_WRITE))]
Admin = Annotated[Caller, Depends(RequireScope(Scope.ADMIN))]
OperatorOnly = Annotated[Caller, Depends(RequireScope(OPERATOR))]
