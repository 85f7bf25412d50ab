"""Keep-alive connections from the gateway to the platform, on the gateway's event loop.

Asyncio protocols with the request and response written and read by
``executor.gateway.wire``, so a call waits on no thread: measured with ``python -m bench
--section gateway``, handing each call to a thread and back cost 0.3 ms of a 1.2 ms call,
and ``httpx.Client``'s own work about 0.5 ms. A connection carries one call at a time and
is kept for the next once its response was read whole and nothing followed it.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from dataclasses import dataclass

from executor.gateway.wire import (
    BadAnswer,
    Body,
    body_of,
    chunk_size,
    parse_head,
    request_bytes,
)

__all__ = ["Answer", "BadAnswer", "Connections", "TooLarge"]

# The platform's status line and headers together; a chunk's size line; its trailers.
MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 4 * 1024
END_OF_HEAD = b"\r\n\r\n"


@dataclass(frozen=True)
class Answer:
    """The platform's response: status, headers (names in lower case), whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class TooLarge(Exception):
    """The response body is over the cap (the connection is dropped, not read further)."""


class _Link(asyncio.Protocol):
    """One connection to the platform: the bytes it received, and a way to wait for more."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the platform closed its side (or the connection broke)
        self.in_call = False
        self.unasked = False  # bytes came while no call was waiting: not reusable
        self._wake: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.unasked = self.unasked or not self.in_call
        self.buffer += data
        self._notify()

    def eof_received(self) -> bool:
        self.ended = True
        self._notify()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._notify()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def more(self) -> bool:
        """Wait for more bytes; False once the platform closed the connection."""
        if self.ended:
            return False
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None
        return True

    async def until(self, marker: bytes, bound: int) -> bytes:
        """The bytes before ``marker`` (taken with it), at most ``bound`` of them."""
        start = 0
        while (end := self.buffer.find(marker, start)) < 0:
            if len(self.buffer) > bound:
                raise BadAnswer(f"no {marker!r} within {bound} bytes")
            start = max(0, len(self.buffer) - len(marker) + 1)
            if not await self.more():
                raise BadAnswer("the platform closed the connection mid-answer")
        found = bytes(self.buffer[:end])
        del self.buffer[: end + len(marker)]
        return found

    async def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self.more():
                raise BadAnswer("the platform closed the connection mid-answer")
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)


class Connections:
    """Calls to the platform, at most ``max_calls`` at once (more wait their turn), each
    answered within ``timeout_s`` of its turn; idle connections kept per origin."""

    def __init__(self, timeout_s: float, max_calls: int) -> None:
        self.timeout_s = timeout_s
        self.max_calls = max_calls
        self._turns = asyncio.Semaphore(max_calls)
        self._tls = ssl.create_default_context()  # the system's CA bundle
        self._idle: dict[str, list[_Link]] = {}

    async def call(
        self,
        origin: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        max_body: int,
    ) -> Answer:
        """Send one request to ``origin`` (``scheme://host[:port]``) and read its answer.

        Raises TimeoutError past ``timeout_s``, TooLarge past ``max_body`` bytes of
        response body, OSError (``BadAnswer`` among them) when the platform cannot be
        reached or its answer is not HTTP/1.1."""
        request = request_bytes(method, target, urllib.parse.urlsplit(origin).netloc, headers, body)
        async with self._turns, asyncio.timeout(self.timeout_s):
            link = await self._take(origin)
            try:
                assert link.transport is not None
                link.in_call = True
                link.transport.write(request)
                answer, reusable = await _answer(link, method, max_body)
            except BaseException:
                link.close()
                raise
            link.in_call = False
            self._keep(origin, link, reusable and not link.buffer)
            return answer

    def close(self) -> None:
        """Close the idle connections (on the event loop's thread)."""
        idle, self._idle = self._idle, {}
        for links in idle.values():
            for link in links:
                link.close()

    async def _take(self, origin: str) -> _Link:
        idle = self._idle.get(origin, [])
        while idle:
            link = idle.pop()
            if not link.ended and not link.unasked:
                return link
            link.close()
        parts = urllib.parse.urlsplit(origin)
        assert parts.hostname is not None, origin  # the settings refuse a URL without one
        tls = parts.scheme == "https"
        _, link = await asyncio.get_running_loop().create_connection(
            _Link,
            parts.hostname,
            parts.port or (443 if tls else 80),
            ssl=self._tls if tls else None,
        )
        return link

    def _keep(self, origin: str, link: _Link, reusable: bool) -> None:
        idle = self._idle.setdefault(origin, [])
        if reusable and not link.ended and len(idle) < self.max_calls:
            idle.append(link)
        else:
            link.close()


async def _answer(link: _Link, method: str, max_body: int) -> tuple[Answer, bool]:
    """The final response (1xx skipped) and whether the connection may carry another call."""
    head = parse_head(await link.until(END_OF_HEAD, MAX_HEAD_BYTES))
    while head.status < 200:
        head = parse_head(await link.until(END_OF_HEAD, MAX_HEAD_BYTES))
    framing, length = body_of(head, method)
    if framing is Body.LENGTH and length > max_body:
        raise TooLarge(length)
    if framing is Body.NONE:
        body = b""
    elif framing is Body.LENGTH:
        body = await link.exactly(length)
    elif framing is Body.CHUNKED:
        body = await _chunked(link, max_body)
    else:
        body = await _to_close(link, max_body)
    reusable = framing is not Body.TO_CLOSE and head.keeps_alive()
    return Answer(head.status, head.headers, body), reusable


async def _chunked(link: _Link, max_body: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := chunk_size(await link.until(b"\r\n", MAX_LINE_BYTES)):
        size += chunk
        if size > max_body:
            raise TooLarge(size)
        chunks.append(await link.exactly(chunk))
        if await link.exactly(2) != b"\r\n":
            raise BadAnswer("a chunk is longer than its size says")
    trailers = 0  # header lines after the last chunk, up to an empty one: dropped
    while line := await link.until(b"\r\n", MAX_LINE_BYTES):
        trailers += len(line)
        if trailers > MAX_HEAD_BYTES:
            raise BadAnswer(f"trailers over {MAX_HEAD_BYTES} bytes")
    return b"".join(chunks)


async def _to_close(link: _Link, max_body: int) -> bytes:
    while True:
        if len(link.buffer) > max_body:
            raise TooLarge(len(link.buffer))
        if not await link.more():
            break
    body = bytes(link.buffer)
    link.buffer.clear()
    return body
