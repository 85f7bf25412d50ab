"""Who is calling: the admin, the executor's gateway (service) or a user, from the API key.

The key is accepted as ``Authorization: Bearer <key>``, ``Authorization: X-API-Key: <key>``
(what the Kili SDK and the executor's gateway send) or an ``X-API-Key`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from examples.labeling_platform.errors import PlatformError
from examples.labeling_platform.tables import User

__all__ = ["ADMIN", "REVIEWER", "SERVICE", "CallerDep", "Principal", "key_digest"]

ADMIN, SERVICE, LABELER, REVIEWER = "ADMIN", "SERVICE", "LABELER", "REVIEWER"
SERVICE_NAME = "executor-plugins"


@dataclass(frozen=True)
class Principal:
    name: str  # email of a user; "admin" or "executor-plugins" otherwise
    role: str

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise PlatformError(
                403, "forbidden", f"this needs one of the roles {list(roles)}; you are {self.role}"
            )


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "").strip()
    for prefix in ("bearer ", "x-api-key:"):
        if header.lower().startswith(prefix):
            return header[len(prefix) :].strip() or None
    return request.headers.get("x-api-key") or None


def caller(request: Request) -> Principal:
    key = _presented_key(request)
    if key is None:
        raise PlatformError(401, "not_authenticated", "send your API key (Authorization header)")
    settings = request.app.state.settings
    for secret, principal in (
        (settings.admin_key, Principal("admin", ADMIN)),
        (settings.service_key, Principal(SERVICE_NAME, SERVICE)),
    ):
        if hmac.compare_digest(key.encode(), secret.get_secret_value().encode()):
            return principal
    with request.app.state.db.session() as session:
        user = session.scalar(select(User).where(User.key_sha256 == key_digest(key)))
    if user is None:
        raise PlatformError(401, "not_authenticated", "unknown API key")
    return Principal(user.email, user.role)


CallerDep = Annotated[Principal, Depends(caller)]
