"""The gateway's HTTP/1.1 to the platform (``executor.gateway.wire``): what it sends, and
each response head it reads or refuses."""

from __future__ import annotations

import re

import pytest

from executor.gateway.wire import (
    BadAnswer,
    Body,
    Head,
    body_of,
    chunk_size,
    parse_head,
    request_bytes,
)


def head(*headers: tuple[str, str], status: int = 200, minor: int = 1) -> Head:
    return Head(status, minor, list(headers))


def test_a_request_is_its_line_host_headers_length_and_body() -> None:
    sent = request_bytes("POST", "/api/x?q=1", "kili:8443", [("X-A", "1")], b"{}")

    assert sent == (
        b"POST /api/x?q=1 HTTP/1.1\r\nHost: kili:8443\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert request_bytes("GET", "/", "h", [], None) == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [("Authorization", "X-API-Key: k\r\nX-Admin: 1"), ("X-A\n", "1"), ("X-A", "a\x00b")],
)
def test_a_header_with_a_line_break_or_nul_is_never_sent(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="carries a line break or NUL: not sent"):
        request_bytes("GET", "/", "h", [(name, value)], None)


def test_a_head_is_read_with_names_in_lower_case_in_their_order() -> None:
    parsed = parse_head(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-Id:  r-1 \t\r\n"
        b"Set-Cookie: a=1\r\nset-cookie: b=2"
    )

    assert parsed == Head(
        201,
        1,
        [
            ("content-type", "application/json"),
            ("x-request-id", "r-1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ],
    )
    assert parse_head(b"HTTP/1.0 204").status == 204  # a reason phrase is optional


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.2", "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH_9.2'"),
        (b"HTTP/2 200 OK", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 20 OK", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded", "not a header line: b' folded'"),
        (b"HTTP/1.1 200 OK\r\nX A: 1", "not a header line: b'X A: 1'"),
        (b"HTTP/1.1 200 OK\r\nno colon", "not a header line"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x01b", "header 'X-A' holds a control character"),
    ],
    ids=["not-http", "http2", "short-status", "folded", "space-in-name", "no-colon", "control"],
)
def test_a_head_that_is_not_http_1_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(BadAnswer, match=re.escape(message)):
        parse_head(data)


@pytest.mark.parametrize(
    ("response", "method", "framing"),
    [
        (head(("content-length", "5")), "HEAD", (Body.NONE, 0)),
        (head(("content-length", "5"), status=204), "GET", (Body.NONE, 0)),
        (head(("content-length", "5"), status=304), "GET", (Body.NONE, 0)),
        (head(("content-length", "5")), "GET", (Body.LENGTH, 5)),
        (head(("content-length", "5, 5"), ("content-length", "5")), "GET", (Body.LENGTH, 5)),
        (
            head(("transfer-encoding", "gzip, Chunked"), ("content-length", "5")),
            "GET",
            (Body.CHUNKED, 0),
        ),
        (head(("transfer-encoding", "chunked, gzip")), "GET", (Body.TO_CLOSE, 0)),
        (head(), "GET", (Body.TO_CLOSE, 0)),
    ],
    ids=[
        "head",
        "204",
        "304",
        "length",
        "same-lengths",
        "chunked-last",
        "chunked-not-last",
        "none",
    ],
)
def test_the_body_is_framed_as_rfc_9112_says(
    response: Head, method: str, framing: tuple[Body, int]
) -> None:
    assert body_of(response, method) == framing


@pytest.mark.parametrize("lengths", [("5", "6"), ("-1",), ("5a",), ("²",), ("1" * 19,), ("",)])
def test_a_length_that_is_not_one_size_is_refused(lengths: tuple[str, ...]) -> None:
    response = head(*(("content-length", length) for length in lengths))
    with pytest.raises(BadAnswer, match="is not one size"):
        body_of(response, "GET")


def test_keep_alive_is_http_1_1_without_connection_close() -> None:
    assert head().keeps_alive()
    assert not head(("connection", "keep-alive, Close")).keeps_alive()
    assert not head(minor=0).keeps_alive()


@pytest.mark.parametrize(("line", "size"), [(b"0", 0), (b"1a", 26), (b"FF ; name=v", 255)])
def test_a_chunk_size_is_hex_with_extensions_ignored(line: bytes, size: int) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"-1", b"0x10", b"g", b"1" * 16])
def test_a_chunk_size_that_is_not_hex_is_refused(line: bytes) -> None:
    with pytest.raises(BadAnswer, match="not a chunk size"):
        chunk_size(line)
