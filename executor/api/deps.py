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

from executor.schemas import TENANT_PATTERN
from executor.service.wiring import ExecutorService
from executor.statuses import Scope
from executor.store.db import Session
from executor.tenancy.access import OPERATOR, Caller, authenticate

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
]

_bearer = HTTPBearer(auto_error=False)


def get_service(request: Request) -> ExecutorService:
    service: ExecutorService = request.app.state.service
    return service


ServiceDep = Annotated[ExecutorService, Depends(get_service)]


def get_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_caller(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_tenant: Annotated[
        str | None,
        Header(
            pattern=TENANT_PATTERN,
            description="Operator key only: the tenant to act on (default: 'default').",
        ),
    ] = None,
) -> Caller:
    """The caller of the request (401 without a valid key), counted against its key's rate."""
    presented = credentials.credentials if credentials is not None else None
    caller = authenticate(service.db, service.operator_key, presented, x_tenant)
    if caller.key_id is not None:
        service.limiter.request(caller.key_id)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


class RequireScope:
    """A dependency: the caller, if it has ``scope`` (403 ``missing_scope`` if not)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self, caller: CallerDep) -> Caller:
        caller.require(self.scope)
        return caller


PluginsRead = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_READ))]
PluginsWrite = Annotated[Caller, Depends(RequireScope(Scope.PLUGINS_WRITE))]
LogsRead = Annotated[Caller, Depends(RequireScope(Scope.LOGS_READ))]
EventsWrite = Annotated[Caller, Depends(RequireScope(Scope.EVENTS_WRITE))]
Admin = Annotated[Caller, Depends(RequireScope(Scope.ADMIN))]
OperatorOnly = Annotated[Caller, Depends(RequireScope(OPERATOR))]
