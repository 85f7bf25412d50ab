"""Request body caps, enforced before a route reads (or the store sees) the body."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware"]


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 JSON for a body over the cap of its path (``caps``), else ``default_cap``.

    The declared Content-Length is checked first; a chunked body is counted as it streams.
    """

    def __init__(self, app: ASGIApp, caps: dict[str, int], default_cap: int) -> None:
        self.app = app
        self.caps = caps
        self.default_cap = default_cap

    def cap_for(self, path: str) -> int:
        return self.caps.get(path.rstrip("/") or "/", self.default_cap)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _too_large(send, cap)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, cap)


async def _too_large(send: Send, cap: int) -> None:
    body = json.dumps(
        {
            "code": "request_too_large",
            "message": f"the request body is over {cap} bytes: send a smaller body",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
