"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from executor.errors import NotAuthenticated
from executor.service import ExecutorService

__all__ = ["Authorized", "ServiceDep", "SessionDep"]

_bearer = HTTPBearer(auto_error=False)


def get_service(request: Request) -> ExecutorService:
    service: ExecutorService = request.app.state.service
    return service


ServiceDep = Annotated[ExecutorService, Depends(get_service)]


def get_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_key(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries the operator key as a Bearer token."""
    if credentials is None:
        raise NotAuthenticated("missing API key: send 'Authorization: Bearer <key>'")
    if not hmac.compare_digest(credentials.credentials.encode(), service.operator_key.encode()):
        raise NotAuthenticated("unknown API key: check the key you were given")


Authorized = Depends(require_key)
