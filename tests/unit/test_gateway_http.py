"""The gateway's HTTP server is uvicorn's h11: requests h11 refuses, folded headers,
pipelining, slow clients, refused bodies, methods and shutdown, over the real socket, a
real SQLite store and a real platform stand-in (the ``rig`` of ``test_gateway``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from executor.gateway import exchange as asgi_exchange
from executor.gateway.exchange import DRAIN_MAX_BYTES
from executor.gateway.server import MAX_HEAD_BYTES, Gateway
from tests.platform_standin import UnixHTTPConnection
from tests.unit.test_gateway import MAX_REQUEST, Answer, Rig, gateway_rig, rig

__all__ = ["rig"]  # the fixture, shared with test_gateway

DEADLINE_S = 30.0
PATH = "/api/projects/p1/assets"


def connect(rig: Rig) -> socket.socket:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(DEADLINE_S)  # a wrong server fails the test instead of hanging it
    try:
        raw.connect(str(rig.gateway.socket_path))
    except OSError:
        raw.close()
        raise
    return raw


def head(method: str, target: str, token: str, *lines: str) -> bytes:
    return (
        "\r\n".join([f"{method} {target} HTTP/1.1", "Host: gateway", f"X-API-Key: {token}", *lines])
        + "\r\n\r\n"
    ).encode("latin-1")


def read_answer(stream: BinaryIO) -> Answer:
    """One HTTP/1.1 response off ``stream`` (header names lower-cased)."""
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, stream.read(int(headers.get("content-length", "0"))), headers)


def exchange(rig: Rig, data: bytes, *, closes: bool = False) -> Answer:
    """Send ``data`` at once and read the answer; with ``closes``, check that the gateway
    closed the connection after it."""
    with connect(rig) as raw, raw.makefile("rb") as stream:
        raw.sendall(data)
        answer = read_answer(stream)
        if closes:
            assert answer.headers["connection"] == "close"
            assert stream.read(1) == b""
        return answer


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("lines", "status", "code", "message"),
    [
        (
            ["GET /api/projects/p1/assets HTTP/1.1 extra", "Host: gateway"],
            400,
            "bad_request",
            "not a valid HTTP/1.1 request: illegal request line: "
            "bytearray(b'GET /api/projects/p1/assets HTTP/1.1 extra')",
        ),
        (
            ["GET /api/projects/p1/assets HTTP/1.1"],
            400,
            "bad_request",
            "not a valid HTTP/1.1 request: Missing mandatory Host: header",
        ),
        (
            ["GET /api/projects/p1/assets HTTP/1.1", " folded: first", "Host: gateway"],
            400,
            "bad_request",
            "not a valid HTTP/1.1 request: continuation line at start of headers",
        ),
        (
            [
                "POST /api/projects/p1/x HTTP/1.1",
                "Host: g",
                "Content-Length: 1",
                "Content-Length: 2",
            ],
            400,
            "bad_request",
            "not a valid HTTP/1.1 request: conflicting Content-Length headers",
        ),
        (
            ["POST /api/projects/p1/x HTTP/1.1", "Host: g", "Transfer-Encoding: gzip"],
            411,
            "length_required",
            "send the request body with Content-Length",
        ),
    ],
    ids=["request-line", "no-host", "fold-first", "two-lengths", "gzip"],
)
def test_requests_h11_refuses_get_a_json_error_and_a_closed_connection(
    rig: Rig, lines: list[str], status: int, code: str, message: str
) -> None:
    invocation_id, token = rig.new_run()
    request = "\r\n".join([*lines, f"X-API-Key: {token}"]) + "\r\n\r\n"

    answer = exchange(rig, request.encode(), closes=True)

    assert (answer.status, answer.json()) == (status, {"code": code, "message": message})
    assert answer.headers["content-type"] == "application/json"
    assert rig.platform.requests == [] and rig.calls(invocation_id) == []


# A body that never completes a chunk: the client sent all it will send and waits for the
# answer, so the gateway's stall timer, shortened to this, is certain to fire.
SHORT_STALL_S = 0.2
STALLED = (
    "the request body is sent as 'Transfer-Encoding: chunked' but no valid chunk came within "
    f"{SHORT_STALL_S:g} s: send the body with Content-Length"
)


@pytest.mark.parametrize(
    ("body", "stall_s", "message"),
    [
        (b'{"text": "not chunked"}', SHORT_STALL_S, STALLED),
        (b"3\r\nabc\r\n10\r\nshort", SHORT_STALL_S, STALLED),
        (
            b"zz\r\nabc\r\n0\r\n\r\n",
            asgi_exchange.CHUNK_STALL_S,
            "the request body is sent as 'Transfer-Encoding: chunked' but is not valid "
            "chunked encoding (illegal chunk header: bytearray(b'zz\\r\\n')): send the body "
            "with Content-Length",
        ),
        (
            b'{"text": "' + b"x" * MAX_HEAD_BYTES + b'"}',
            asgi_exchange.CHUNK_STALL_S,
            "the request body is sent as 'Transfer-Encoding: chunked' but is not valid "
            "chunked encoding (Receive buffer too long): send the body with Content-Length",
        ),
    ],
    ids=["plain-body", "cut-short", "bad-size", "long-plain-body"],
)
def test_a_body_that_is_not_valid_chunked_gets_a_400(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, body: bytes, stall_s: float, message: str
) -> None:
    """Sent whole before reading; the answer is waited for (the socket's timeout only
    keeps a gateway that never answers from hanging the test). Bodies h11 refuses keep the
    gateway's own stall limit: their answer must not depend on it."""
    monkeypatch.setattr(asgi_exchange, "CHUNK_STALL_S", stall_s)
    invocation_id, token = rig.new_run()
    request = head("POST", "/api/projects/p1/x", token, "Transfer-Encoding: chunked") + body

    answer = exchange(rig, request, closes=True)

    assert (answer.status, answer.json()) == (
        400,
        {"code": "bad_chunked_body", "message": message},
    )
    assert rig.platform.requests == [] and rig.calls(invocation_id) == []


def test_a_head_still_growing_past_the_bound_gets_431(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    # h11 holds an unfinished head to MAX_HEAD_BYTES (a whole one read at once is parsed).
    unfinished = head("GET", PATH, token, "X-Big: " + "b" * MAX_HEAD_BYTES)[:-4]

    answer = exchange(rig, unfinished, closes=True)

    assert (answer.status, answer.json()) == (
        431,
        {
            "code": "headers_too_large",
            "message": f"the request line and headers are over {MAX_HEAD_BYTES} bytes: "
            "send fewer or shorter headers",
        },
    )
    assert rig.platform.requests == [] and rig.calls(invocation_id) == []


def test_a_folded_header_reaches_the_platform_unfolded(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    request = head("GET", PATH, token, "X-Note: first", "  second")

    answer = exchange(rig, request)

    assert answer.status == 200
    (seen,) = rig.platform.requests
    assert seen.headers["x-note"] == "first second"  # one line upstream: nothing smuggled
    assert [c.status for c in rig.calls(invocation_id)] == [200]


def test_pipelined_requests_on_one_connection_are_answered_in_order(rig: Rig) -> None:
    _, token = rig.new_run()
    targets = [f"{PATH}/{i}" for i in range(3)]
    with connect(rig) as raw, raw.makefile("rb") as stream:
        raw.sendall(b"".join(head("GET", t, token) for t in targets))
        answers = [read_answer(stream) for _ in targets]
    assert [(a.status, a.json()["path"]) for a in answers] == [(200, t) for t in targets]


def test_a_client_sending_its_head_byte_by_byte_holds_up_no_one(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    slow_request = head("GET", f"{PATH}/slow", token)
    half = len(slow_request) // 2
    with connect(rig) as slow, slow.makefile("rb") as slow_stream:
        for byte in slow_request[:half]:
            slow.sendall(bytes([byte]))
        # Mid-head on one connection; a whole call on another is answered meanwhile.
        answer = exchange(rig, head("GET", f"{PATH}/fast", token))
        assert (answer.status, answer.json()["path"]) == (200, f"{PATH}/fast")
        for byte in slow_request[half:]:
            slow.sendall(bytes([byte]))
        slow_answer = read_answer(slow_stream)
    assert (slow_answer.status, slow_answer.json()["path"]) == (200, f"{PATH}/slow")
    assert [c.path for c in rig.calls(invocation_id)] == [f"{PATH}/fast", f"{PATH}/slow"]


def test_a_refused_body_sent_whole_before_reading_still_gets_its_413(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    size = 4 * 1024 * 1024  # far over the socket's buffers: the gateway must read it
    assert MAX_REQUEST < size <= DRAIN_MAX_BYTES
    request = head("POST", f"{PATH}/x", token, f"Content-Length: {size}") + b"x" * size

    answer = exchange(rig, request, closes=True)

    assert (answer.status, answer.json()["code"]) == (413, "request_too_large")
    assert rig.platform.requests == []
    assert [c.status for c in rig.calls(invocation_id)] == [413]


def test_a_body_over_the_drain_bound_gets_its_413_at_once(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    size = DRAIN_MAX_BYTES + 1
    with connect(rig) as raw, raw.makefile("rb") as stream:
        raw.sendall(head("POST", f"{PATH}/x", token, f"Content-Length: {size}"))
        answer = read_answer(stream)  # before any of the body was sent
        assert stream.read(1) == b""
    assert (answer.status, answer.json()["code"]) == (413, "request_too_large")
    assert [c.status for c in rig.calls(invocation_id)] == [413]


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_methods_the_gateway_does_not_forward_get_405(rig: Rig, method: str) -> None:
    invocation_id, token = rig.new_run()

    answer = exchange(rig, head(method, PATH, token))

    assert answer.status == 405
    assert answer.json() == {
        "code": "method_not_allowed",
        "message": "the gateway forwards GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS only, "
        f"not {method}",
    }
    assert answer.headers["allow"] == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    assert rig.platform.requests == [] and rig.calls(invocation_id) == []


def test_a_client_that_leaves_mid_body_is_recorded_and_not_forwarded(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    with connect(rig) as raw:
        raw.sendall(head("POST", f"{PATH}/x", token, "Content-Length: 100") + b"only ten b")
    wait_until(lambda: rig.calls(invocation_id) != [], "the call's record")
    (call,) = rig.calls(invocation_id)
    assert (call.status, call.error) == (
        400,
        "the connection closed before the whole request body arrived",
    )
    assert rig.platform.requests == []


def test_stop_lets_a_call_in_flight_finish_and_be_recorded(rig: Rig) -> None:
    invocation_id, token = rig.new_run()
    answers: list[Answer] = []
    caller = threading.Thread(
        target=lambda: answers.append(exchange(rig, head("GET", f"{PATH}/wait", token)))
    )
    caller.start()
    wait_until(lambda: len(rig.platform.requests) == 1, "the held call at the platform")
    stopper = threading.Thread(target=rig.gateway.stop)
    stopper.start()

    def refuses_new_calls() -> bool:
        try:
            connect(rig).close()
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        return False

    wait_until(refuses_new_calls, "the gateway to stop listening")
    assert stopper.is_alive()  # stop() waits for the held call
    rig.platform.release()
    stopper.join()
    caller.join()

    assert [(a.status, a.json()["released"]) for a in answers] == [(200, True)]
    assert [(c.path, c.status) for c in rig.calls(invocation_id)] == [(f"{PATH}/wait", 200)]
    assert not rig.gateway.socket_path.exists()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_plugin_calls_stay_out_of_the_access_log_the_api_server_shares(
    rig: Rig, tmp_path: Path
) -> None:
    """The API's uvicorn and the gateway's share the ``uvicorn.access`` logger: starting the
    gateway must leave the API's access log as it was, and log no plugin call there."""
    access = logging.getLogger("uvicorn.access")
    api_access_log = _Collect()
    level = access.level
    access.addHandler(api_access_log)
    access.setLevel(logging.INFO)
    settings = rig.gateway.settings.with_values(gateway_socket_dir=tmp_path / "g")
    second = Gateway(rig.db, settings)
    try:
        second.start()
        _, token = rig.new_run()
        connection = UnixHTTPConnection(str(second.socket_path))
        with contextlib.closing(connection):
            connection.request("GET", f"{PATH}?q=1", headers={"X-API-Key": token})
            assert connection.getresponse().status == 200
        still_attached = api_access_log in access.handlers
    finally:
        second.stop()
        access.removeHandler(api_access_log)
        access.setLevel(level)
    assert still_attached and api_access_log.records == []


def test_a_platform_slower_than_the_upstream_timeout_gets_504(tmp_path: Path) -> None:
    """The stand-in holds ``.../wait`` until the test releases it (at the rig's end), so a
    short upstream timeout is certain to fire."""
    with gateway_rig(tmp_path, upstream_timeout_s=0.2) as rig:
        invocation_id, token = rig.new_run()

        answer = exchange(rig, head("GET", f"{PATH}/wait", token))  # held until released

        message = f"the platform API did not answer GET {PATH}/wait within 0.2 s"
        assert (answer.status, answer.json()) == (
            504,
            {"code": "platform_timeout", "message": message},
        )
        (call,) = rig.calls(invocation_id)
        assert (call.status, call.error) == (504, message)
