"""One request's body and its answer over ASGI: reading the body, dropping a refused one
so its sender reads the answer, and sending the reply."""

from __future__ import annotations

import asyncio
from enum import Enum

import httpx
from starlette.types import Receive, Scope, Send

from executor.gateway.forward import Reply, error_reply

__all__ = [
    "CHUNK_STALL_S",
    "DRAIN_MAX_BYTES",
    "Body",
    "request_target",
    "send_reply",
    "settle_body",
]

# A refused body up to this size is read and dropped before the answer, so a client that
# sends its whole body first reads the error instead of a reset connection.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
# A refused chunked body is read only while its chunks keep coming. A body that is not
# chunked at all (a plain body under "Transfer-Encoding: chunked") never completes a chunk
# line, so h11 would wait for it for ever: once no chunk came for this long, it is refused.
CHUNK_STALL_S = 5.0


class Drained(Enum):
    """What is left of a refused body after the gateway read and dropped it."""

    ALL = "all"  # read to its end (or the client left)
    LEFT = "left"  # over the drain bound, or not sent until 100 Continue: close after
    STALLED = "stalled"  # a chunked body whose next chunk did not come


class Body:
    """The request body as the server hands it over; remembers whether it was read."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.touched = False

    async def read(self) -> bytes | None:
        """The whole body, or None when the client left before sending all of it."""
        self.touched = True
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def drain(self, stall_s: float | None = None) -> Drained:
        """Read and drop the body, up to ``DRAIN_MAX_BYTES``; with ``stall_s``, only while
        each part comes within ``stall_s``."""
        self.touched = True
        drained = 0
        while drained <= DRAIN_MAX_BYTES:
            try:
                message = await asyncio.wait_for(self._receive(), stall_s)
            except TimeoutError:
                return Drained.STALLED
            if message["type"] != "http.request":  # the client went away
                return Drained.ALL
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return Drained.ALL
        return Drained.LEFT


async def settle_body(headers: httpx.Headers, body: Body, reply: Reply) -> Reply:
    """``reply``, once a body nobody read is dropped: closing the connection after it when
    bytes of the body are left, or a 400 when a chunked body stalled."""
    if body.touched or not _has_body(headers):
        return reply
    left = await _drop_body(headers, body)
    if left is Drained.STALLED:
        return error_reply(
            400,
            "bad_chunked_body",
            "the request body is sent as 'Transfer-Encoding: chunked' but no valid "
            f"chunk came within {CHUNK_STALL_S:g} s: send the body with Content-Length",
            close=True,
        )
    if left is Drained.LEFT:
        reply.close = True  # unread bytes would be taken for the next request
    return reply


def request_target(scope: Scope) -> str:
    """The request target as the plugin wrote it (the server splits off the query)."""
    target = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{target}?{query}" if query else target


def _has_body(headers: httpx.Headers) -> bool:
    return "transfer-encoding" in headers or int(headers.get("content-length") or 0) > 0


async def _drop_body(headers: httpx.Headers, body: Body) -> Drained:
    """Read and drop a body the gateway refused, so that its sender reads the answer; LEFT
    when that cannot be done: over ``DRAIN_MAX_BYTES``, or not sent until ``100 Continue``."""
    if headers.get("expect", "").lower() == "100-continue":
        return Drained.LEFT
    if "transfer-encoding" in headers:
        return await body.drain(CHUNK_STALL_S)
    if int(headers.get("content-length") or 0) > DRAIN_MAX_BYTES:
        return Drained.LEFT
    return await body.drain()


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    if reply.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
