"""Request ids, and the last-resort answer when a route fails unexpectedly.

Every response carries ``X-Request-ID``: the caller's own when it looks like an id,
otherwise a fresh one. An exception no handler took is logged with its traceback and that
id, and answered as the JSON 500 of ``executor.api.errors.internal_error`` (503
``store_unavailable`` when the store was out of reach) — never as
plain text — so a caller can quote the id and the operator can find the traceback.
"""

from __future__ import annotations

import logging
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executor.api.errors import internal_error, store_unavailable
from executor.store.db import unreachable

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware", "request_id_of"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is 1 to 128 letters, digits, '.', '_', ':' or '-' (UUIDs,
# trace ids); anything else (too long, spaces, control characters) is replaced, so the id
# is always safe to put in a header and a log line.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_of(scope: Scope) -> str:
    """The id the caller sent if it is sane, else a new random one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            sent = bytes(value).decode("latin-1")
            if _SANE_ID.fullmatch(sent):
                return sent
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Adds ``X-Request-ID`` to every response and turns unhandled exceptions into a
    logged, JSON 500 ``internal_error``; the outermost middleware of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            answer = internal_error
            if unreachable(error):  # not a bug: no traceback, a 503 to retry
                log.warning(
                    "%s %s: the store is unreachable (%s): request id %s",
                    scope["method"],
                    scope["path"],
                    type(error).__name__,
                    request_id,
                )
                answer = store_unavailable
            else:
                log.exception(
                    "%s %s failed: request id %s", scope["method"], scope["path"], request_id
                )
            # Once the response has begun, the server can only cut it short: it closes the
            # connection when the app returns without finishing it.
            if not started:
                await answer(request_id)(scope, receive, send_with_id)
