"""What a resolver gets: the service, the caller (authenticated on first use), the desk."""

from __future__ import annotations

from dataclasses import dataclass, field

from executor.api.graphql.uploads import UploadDesk
from executor.errors import ExecutorError, NotAuthenticated
from executor.service.wiring import ExecutorService
from executor.statuses import Scope
from executor.tenancy.access import Caller, authenticate

__all__ = ["KILI_KEY_PREFIX", "NotImplementedOperation", "RequestContext", "presented_key"]

# The Kili SDK sends ``Authorization: X-API-Key: <key>``; ``Bearer <key>`` is accepted too.
KILI_KEY_PREFIX = "X-API-Key:"


class NotImplementedOperation(ExecutorError):
    """This Kili operation is not implemented by the executor."""

    code = "operation_not_implemented"
    status_code = 400


def presented_key(authorization: str | None) -> str | None:
    """The API key in an Authorization header, in the Kili SDK's form or as a bearer."""
    if not authorization:
        return None
    value = authorization.strip()
    for prefix in (KILI_KEY_PREFIX, "Bearer "):
        if value[: len(prefix)].lower() == prefix.lower():
            return value[len(prefix) :].strip() or None
    return value


@dataclass
class RequestContext:
    """One GraphQL request's context; ``upload_url`` is where the desk's tickets are PUT."""

    service: ExecutorService
    desk: UploadDesk
    authorization: str | None
    upload_url: str
    _caller: Caller | None = field(default=None, init=False)

    def caller(self, scope: Scope) -> Caller:
        """The caller if it has ``scope``: NotAuthenticated / MissingScope as in REST."""
        if self._caller is None:
            key = presented_key(self.authorization)
            if key is None:
                raise NotAuthenticated(
                    "missing API key: send 'Authorization: X-API-Key: <key>' (the Kili SDK's "
                    "api_key) with an executor API key"
                )
            self._caller = authenticate(self.service.db, self.service.operator_key, key, None)
            if self._caller.key_id is not None:
                self.service.limiter.request(self._caller.key_id)
        self._caller.require(scope.value)
        return self._caller
