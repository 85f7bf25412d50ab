"""Request body caps, enforced before a route runs (so before the store sees the body).

A body over its cap answers 413 ``request_too_large`` however it is sent:
- with a Content-Length over the cap, before the app runs;
- chunked (no length up front), once the bytes read pass the cap: such a body is read
  whole (at most the cap) before the app runs, and handed to it as one message.

A client may send its whole body before it reads the answer; if the server closed the
connection with part of that body unread, the client would see a connection reset, not
the 413. So the rest of a refused body is read and thrown away first, up to
``DRAIN_MAX_BYTES``; past that bound (or when the client waits for ``100 Continue`` and so
has sent nothing yet) the 413 goes out at once with ``Connection: close``.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executor.api.errors import HTTP_CODES

__all__ = ["DRAIN_MAX_BYTES", "BodyLimitMiddleware"]

# The most bytes of a refused body read (and discarded) so that its sender gets the 413:
# above the 11 MiB upload cap with room to spare, small next to what a client can send.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
TOO_LARGE = 413


class BodyLimitMiddleware:
    """413 JSON for a body over the cap of its path (``caps``), else ``default_cap``."""

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
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            # The server holds the body to its Content-Length (a malformed one never
            # reaches the app), so only the declared size needs checking.
            if int(declared) <= cap:
                await self.app(scope, receive, send)
            elif headers.get(b"expect", b"").lower() == b"100-continue":
                await _too_large(send, cap, drained=False)
            else:
                drained = int(declared) <= DRAIN_MAX_BYTES and await _drain(receive)
                await _too_large(send, cap, drained=drained)
            return
        body, ended = await _read_capped(receive, cap)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)
        else:
            await _too_large(send, cap, drained=ended or await _drain(receive))


async def _read_capped(receive: Receive, cap: int) -> tuple[bytes | None, bool]:
    """(the whole body if it is at most ``cap`` bytes, else None; whether nothing of it is
    left to read). A client that went away gets None too: the server drops the answer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, True
        chunk = message.get("body", b"")
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if size > cap:
            return None, not more
        chunks.append(chunk)
        if not more:
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read already, then the server's (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _drain(receive: Receive) -> bool:
    """Read the rest of the body, up to ``DRAIN_MAX_BYTES``; True if it all came."""
    drained = 0
    while drained <= DRAIN_MAX_BYTES:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return False
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def _too_large(send: Send, cap: int, *, drained: bool) -> None:
    message = f"the request body is over {cap} bytes: send a smaller body"
    body = json.dumps({"code": HTTP_CODES[TOO_LARGE], "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if not drained:  # unread bytes may follow: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": TOO_LARGE, "headers": headers})
    await send({"type": "http.response.body", "body": body})
