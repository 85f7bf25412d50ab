"""Keep-alive connections from the gateway to the platform, on the gateway's event loop.

h11 over asyncio protocols, so a call waits on no thread: measured with ``python -m bench
--section gateway``, handing each call to a thread and back cost 0.3 ms of a 1.2 ms call,
and ``httpx.Client``'s own work about 0.5 ms. A connection carries one call at a time and
is kept for the next once its response was read whole.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from dataclasses import dataclass

import h11

__all__ = ["Answer", "Connections", "TooLarge"]

# The platform's status line and headers together.
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """The platform's response: status, headers (names in lower case), whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class TooLarge(Exception):
    """The response body is over the cap (the connection is dropped, not read further)."""


class _Link(asyncio.Protocol):
    """One connection to the platform: its h11 state and a way to wait for its bytes."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.in_call = False
        self.unasked = False  # bytes came while no call was waiting: not reusable
        self._wake: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.unasked = self.unasked or not self.in_call
        self.h11.receive_data(data)
        self._notify()

    def eof_received(self) -> bool:
        self.h11.receive_data(b"")
        self._notify()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._notify()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def next_event(self) -> object:
        """h11's next event of the response, waiting for bytes as needed."""
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.lost:
                raise ConnectionResetError("the platform closed the connection mid-answer")
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None

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
        response body, OSError or ``h11.ProtocolError`` when the platform cannot be
        reached or does not speak HTTP/1.1."""
        async with self._turns, asyncio.timeout(self.timeout_s):
            link = await self._take(origin)
            try:
                answer = await _exchange(link, origin, method, target, headers, body, max_body)
            except BaseException:
                link.close()
                raise
            self._keep(origin, link)
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
            if not link.lost and not link.unasked:
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

    def _keep(self, origin: str, link: _Link) -> None:
        connection = link.h11
        extra, closed = connection.trailing_data  # bytes past the answer: not for a next call
        done = connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if done and not extra and not closed:
            connection.start_next_cycle()
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_calls and not link.lost:
                idle.append(link)
                return
        link.close()


async def _exchange(
    link: _Link,
    origin: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    max_body: int,
) -> Answer:
    assert link.transport is not None
    link.in_call = True
    host = urllib.parse.urlsplit(origin).netloc
    framing = [("Content-Length", str(len(body)))] if body is not None else []
    request = h11.Request(
        method=method, target=target, headers=[("Host", host), *headers, *framing]
    )
    data = link.h11.send(request) or b""
    if body:
        data += link.h11.send(h11.Data(data=body)) or b""
    link.transport.write(data + (link.h11.send(h11.EndOfMessage()) or b""))
    response = await _response(link)
    head = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
    declared = next((int(v) for k, v in head if k == "content-length"), 0)
    if declared > max_body:
        raise TooLarge(declared)
    chunks: list[bytes] = []
    size = 0
    while not isinstance(event := await link.next_event(), h11.EndOfMessage):
        if not isinstance(event, h11.Data):
            raise ConnectionResetError(f"the platform's answer ended early ({event!r})")
        size += len(event.data)
        if size > max_body:
            raise TooLarge(size)
        chunks.append(bytes(event.data))
    link.in_call = False
    return Answer(response.status_code, head, b"".join(chunks))


async def _response(link: _Link) -> h11.Response:
    """The final response's head (1xx answers skipped)."""
    while True:
        event = await link.next_event()
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise ConnectionResetError(f"the platform closed the connection ({event!r})")
