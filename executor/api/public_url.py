"""The API's own URLs are built on ``EXECUTOR_PUBLIC_URL``, never on a request's Host.

Starlette builds a redirect's ``Location`` (a trailing slash added or removed, ``/ui`` to
``/ui/``) from the request's Host header: a forged Host would send a client elsewhere.
``PublicUrlMiddleware`` rebuilds such a Location on the configured URL.
"""

from __future__ import annotations

from starlette.datastructures import URL, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PublicUrlMiddleware"]


class PublicUrlMiddleware:
    """A response's ``Location`` that starts with the origin the request's Host names is
    moved to ``public_url`` (scheme, host, port and path prefix)."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self.public_url = public_url.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        requested = URL(scope=scope)
        origin = f"{requested.scheme}://{requested.netloc}"

        async def send_public(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                location = headers.get("location")
                if location is not None and _under(location, origin):
                    headers["location"] = self.public_url + location[len(origin) :]
            await send(message)

        await self.app(scope, receive, send_public)


def _under(location: str, origin: str) -> bool:
    rest = location[len(origin) :]
    return location.startswith(origin) and (rest == "" or rest[0] in "/?#")
