"""The gateway's connections to the platform (``executor.gateway.upstream``) against scripted
HTTP servers on loopback: what is kept, what is dropped, and each way a platform can fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from executor.gateway.upstream import Answer, BadAnswer, Connections, TooLarge

HANG_S = 30.0
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
Script = Callable[["Platform", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Platform:
    """A loopback server running ``script`` on each connection it accepts."""

    script: Script
    origin: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    held: int = 0
    most_held: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(self, reader, writer)
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        """One request head (the tests send no body), b"" at the end of the connection."""
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if head:
            self.requests.append(head)
        return head


@asynccontextmanager
async def platform(script: Script) -> AsyncIterator[Platform]:
    served = Platform(script)
    server = await asyncio.start_server(served.accept, "127.0.0.1", 0)
    served.origin = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield served
    finally:
        served.release.set()
        server.close()


async def answer_each(
    served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Keep-alive: every request gets ``OK``."""
    while True:
        try:
            await served.request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(OK)


def answer_once(sent: bytes, *, hold: bool = False) -> Script:
    """A script that reads one request and writes ``sent``; with ``hold``, the connection
    then stays open until the test is over (only the client's own bound ends the call)."""

    async def script(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await served.request(reader)
        writer.write(sent)
        if hold:
            await served.release.wait()

    return script


async def call(connections: Connections, origin: str, method: str = "GET") -> Answer:
    return await connections.call(origin, method, "/api/x?q=1", [("X-Test", "1")], None, 1024)


def run(test: Callable[[], Awaitable[None]]) -> None:
    """``test`` on an event loop of its own; a hang becomes a failure."""
    asyncio.run(asyncio.wait_for(test(), HANG_S))


def test_one_connection_carries_call_after_call() -> None:
    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(answer_each) as served:
            answers = [await call(connections, served.origin) for _ in range(3)]
            connections.close()
        assert [(a.status, a.body) for a in answers] == [(200, b"{}")] * 3
        assert answers[0].headers == [("content-type", "application/json"), ("content-length", "2")]
        assert served.connections == 1
        assert served.requests[0].startswith(b"GET /api/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nX-Test: 1\r\n" in served.requests[0]

    run(test)


def test_a_connection_the_platform_closed_while_idle_is_not_used_again() -> None:
    async def test() -> None:
        connections = Connections(30, 10)
        # No "Connection: close", and closed all the same.
        async with platform(answer_once(OK)) as served:
            first = await call(connections, served.origin)
            (link,) = connections._idle[served.origin]
            while not link.ended:  # the platform closed it: the client side sees it
                await asyncio.sleep(0.01)
            second = await call(connections, served.origin)
            connections.close()
        assert (first.status, second.status) == (200, 200)
        assert served.connections == 2

    run(test)


def test_an_answer_with_connection_close_is_not_kept() -> None:
    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(
            answer_once(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        ) as served:
            for _ in range(2):
                assert (await call(connections, served.origin)).body == b"{}"
            assert connections._idle.get(served.origin, []) == []
        assert served.connections == 2

    run(test)


@pytest.mark.parametrize("when", ["with-the-answer", "while-idle"])
def test_bytes_nobody_asked_for_make_a_connection_unusable(when: str) -> None:
    """Bytes past an answer would be read as the next call's answer: that connection is
    dropped whether they came with the answer or later."""
    answered = asyncio.Event()

    async def chatty(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await served.request(reader)
        if when == "with-the-answer":
            writer.write(OK + OK)
        else:
            writer.write(OK)
            await answered.wait()
            writer.write(OK)
        await answer_each(served, reader, writer)

    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(chatty) as served:
            await call(connections, served.origin)
            answered.set()
            if when == "while-idle":
                (link,) = connections._idle[served.origin]
                while not link.unasked:
                    await asyncio.sleep(0.01)
            second = await call(connections, served.origin)
            connections.close()
        assert (second.status, served.connections) == (200, 2)

    run(test)


def test_a_chunked_answer_is_read_whole_and_capped() -> None:
    async def chunked(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await served.request(reader):
            size = 600 if b"/big" in served.requests[-1] else 300
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(2):
                writer.write(b"%x\r\n%s\r\n" % (size, b"a" * size))
            writer.write(b"0\r\n\r\n")

    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(chunked) as served:
            small = await connections.call(served.origin, "GET", "/small", [], None, 1024)
            with pytest.raises(TooLarge):
                await connections.call(served.origin, "GET", "/big", [], None, 1024)
            connections.close()
        assert small.body == b"a" * 600

    run(test)


def test_a_declared_length_over_the_cap_is_refused_before_its_body() -> None:
    async def test() -> None:
        async with platform(
            answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n", hold=True)
        ) as served:
            with pytest.raises(TooLarge):
                await call(Connections(30, 10), served.origin)

    run(test)


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", BadAnswer),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", BadAnswer),
        (b"", BadAnswer),
    ],
    ids=["not-http", "closed-mid-body", "closed-before-answer"],
)
def test_a_platform_that_does_not_answer_in_http_raises(
    sent: bytes, error: type[Exception]
) -> None:
    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(answer_once(sent)) as served:
            with pytest.raises(error):
                await call(connections, served.origin)
            assert connections._idle.get(served.origin, []) == []

    run(test)


def test_informational_answers_are_skipped_and_a_head_answer_has_no_body() -> None:
    async def early(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await served.request(reader):
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            if not served.requests[-1].startswith(b"HEAD"):
                writer.write(b"hello")

    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(early) as served:
            got = await call(connections, served.origin)
            head = await call(connections, served.origin, "HEAD")
            again = await call(connections, served.origin)
            connections.close()
        assert (got.status, got.body, head.body, again.body) == (200, b"hello", b"", b"hello")
        assert served.connections == 1

    run(test)


def test_a_platform_that_holds_the_call_past_the_timeout_raises_timeout() -> None:
    async def test() -> None:
        async with platform(answer_once(b"", hold=True)) as served:
            with pytest.raises(TimeoutError):
                await call(Connections(0.2, 10), served.origin)

    run(test)


def test_no_more_calls_than_the_bound_reach_the_platform_at_once() -> None:
    async def holding(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await served.request(reader):
            served.held += 1
            served.most_held = max(served.most_held, served.held)
            await served.release.wait()
            served.held -= 1
            writer.write(OK)

    async def test() -> None:
        connections = Connections(30, 2)
        async with platform(holding) as served:
            calls = [asyncio.create_task(call(connections, served.origin)) for _ in range(3)]
            while served.held < 2:
                await asyncio.sleep(0.01)
            for _ in range(50):  # the third call, were it not waiting its turn, connects
                await asyncio.sleep(0)
            assert served.held == 2 and not calls[2].done()
            served.release.set()
            answers = await asyncio.gather(*calls)
            connections.close()
        assert [a.status for a in answers] == [200] * 3
        assert served.most_held == 2

    run(test)


def test_an_origin_nobody_listens_on_raises_os_error() -> None:
    async def test() -> None:
        async with platform(answer_each) as served:
            origin = served.origin
        with pytest.raises(OSError):
            await call(Connections(30, 10), origin)

    run(test)


def test_a_body_framed_by_the_end_of_the_connection_is_read_to_it_and_not_kept() -> None:
    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(
            answer_once(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        ) as served:
            answer = await call(connections, served.origin)
            assert connections._idle[served.origin] == []
        assert (answer.status, answer.body) == (200, b"all of it")

    run(test)


def test_chunk_trailers_are_dropped_and_the_connection_kept() -> None:
    async def trailing(
        served: Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await served.request(reader):
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"3;x=y\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n")

    async def test() -> None:
        connections = Connections(30, 10)
        async with platform(trailing) as served:
            answers = [await call(connections, served.origin) for _ in range(2)]
            connections.close()
        assert [a.body for a in answers] == [b"abc", b"abc"]
        assert served.connections == 1

    run(test)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000, "no b'\\r\\n\\r\\n' within 65536 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            "a chunk is longer than its size says",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: 1\r\n" * 12_000,
            "trailers over 65536 bytes",
        ),
    ],
    ids=["head-too-long", "chunk-too-long", "trailers-too-long"],
)
def test_an_answer_past_its_bounds_is_refused(sent: bytes, message: str) -> None:
    async def test() -> None:
        async with platform(answer_once(sent, hold=True)) as served:
            with pytest.raises(BadAnswer) as refused:
                await call(Connections(30, 10), served.origin)
        assert str(refused.value) == message

    run(test)
