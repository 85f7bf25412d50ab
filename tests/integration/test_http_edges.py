"""The HTTP edges on a real server over loopback: request ids and the JSON 500, body caps
however the body is sent (raw sockets, so the bytes on the wire are exactly these), and
JSON syntax errors by line and column. Each refusal stores nothing."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from executor.api.limits import DRAIN_MAX_BYTES
from executor.store.tables import Event, Invocation, Plugin
from tests.conftest import OPERATOR_KEY, RunningServer

MiB = 1024 * 1024
UPLOAD_CAP = 11 * MiB
EVENT_CAP = 1 * MiB  # the default EXECUTOR_MAX_EVENT_BYTES
BOUNDARY = "edge-boundary"
GOOD_MAIN = b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _read_answer(sock: socket.socket) -> Answer:
    stream = sock.makefile("rb")
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline().rstrip(b"\r\n")) != b"":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    return Answer(status, headers, json.loads(body))


def exchange(server: RunningServer, head: str, body: bytes = b"", *, chunk: int = 0) -> Answer:
    """Send the whole request (in chunks of ``chunk`` bytes when given), only then read the
    answer: a reset while sending, or before the answer is read, fails the test."""
    with socket.create_connection(("127.0.0.1", server.settings.port), timeout=120) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        if chunk:
            for start in range(0, len(body), chunk):
                part = body[start : start + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        return _read_answer(sock)


def request_head(method: str, path: str, *lines: str) -> str:
    auth = f"Authorization: Bearer {OPERATOR_KEY}"
    return "\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", auth, *lines, ""])


def event_body(size: int) -> bytes:
    """An event of about ``size`` bytes (its label carries the padding)."""
    return json.dumps(
        {"type": "onSubmit", "project_id": "edge", "asset_id": "a", "label": {"x": "y" * size}}
    ).encode()


def upload_body(size: int) -> bytes:
    """A multipart upload of plugin 'edge' whose file is ``size`` bytes."""
    file = GOOD_MAIN + b"#" * max(size - len(GOOD_MAIN), 0)
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nedge\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="main.py"\r\n'
            "Content-Type: text/x-python\r\n\r\n"
        ).encode()
        + file
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def stored(server: RunningServer) -> tuple[int, int, int]:
    """(events, invocations, plugins) in the store."""
    with server.service.db.session() as session:
        events, invocations, plugins = (
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Event, Invocation, Plugin)
        )
    return events, invocations, plugins


def too_large(cap: int) -> dict[str, str]:
    return {
        "code": "request_too_large",
        "message": f"the request body is over {cap} bytes: send a smaller body",
    }


JSON_TYPE = "Content-Type: application/json"
MULTIPART_TYPE = f"Content-Type: multipart/form-data; boundary={BOUNDARY}"
CAPPED = [
    pytest.param("/v1/events", JSON_TYPE, event_body(2 * MiB), EVENT_CAP, id="event"),
    pytest.param("/v1/plugins", MULTIPART_TYPE, upload_body(12 * MiB), UPLOAD_CAP, id="upload"),
]


# --------------------------------------------------------------------------- body caps


@pytest.mark.parametrize(("path", "content_type", "body", "cap"), CAPPED)
def test_a_chunked_body_over_the_cap_is_413_and_stores_nothing(
    server: RunningServer, path: str, content_type: str, body: bytes, cap: int
) -> None:
    before = stored(server)
    head = request_head("POST", path, content_type, "Transfer-Encoding: chunked")

    answer = exchange(server, head, body, chunk=64 * 1024)

    assert answer.status == 413
    assert answer.body == too_large(cap)
    assert answer.headers["content-type"] == "application/json"
    assert "connection" not in answer.headers  # all of it was read: the connection lives on
    assert stored(server) == before


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
@pytest.mark.parametrize(("path", "content_type", "body", "cap"), CAPPED)
def test_a_declared_too_large_body_sent_in_full_gets_its_413_not_a_reset(
    server: RunningServer, path: str, content_type: str, body: bytes, cap: int, connection: str
) -> None:
    before = stored(server)
    head = request_head(
        "POST", path, content_type, f"Content-Length: {len(body)}", f"Connection: {connection}"
    )

    answer = exchange(server, head, body)

    assert answer.status == 413
    assert answer.body == too_large(cap)
    assert stored(server) == before


def test_a_body_past_the_drain_bound_is_answered_before_it_is_sent(
    server: RunningServer,
) -> None:
    """Nothing of the body is sent: the 413 comes at once, and the connection closes."""
    head = request_head("POST", "/v1/events", JSON_TYPE, f"Content-Length: {DRAIN_MAX_BYTES + 1}")
    answer = exchange(server, head)
    assert answer.status == 413
    assert answer.body == too_large(EVENT_CAP)
    assert answer.headers["connection"] == "close"


def test_a_client_waiting_for_100_continue_gets_the_413_instead(server: RunningServer) -> None:
    head = request_head(
        "POST", "/v1/events", JSON_TYPE, f"Content-Length: {2 * MiB}", "Expect: 100-continue"
    )
    answer = exchange(server, head)  # no body: a real client sends it after 100 Continue
    assert answer.status == 413
    assert answer.body == too_large(EVENT_CAP)
    assert answer.headers["connection"] == "close"


def test_a_chunked_body_within_the_cap_reaches_the_route(server: RunningServer) -> None:
    head = request_head("POST", "/v1/events", JSON_TYPE, "Transfer-Encoding: chunked")
    answer = exchange(server, head, event_body(EVENT_CAP // 2), chunk=4096)
    assert answer.status == 202, answer.body
    assert answer.body["invocations"] == []  # no plugin is active on the project "edge"


# --------------------------------------------------------------------------- JSON syntax

MALFORMED_EVENT = b'{\n  "type": "onSubmit",\n  "project_id": "p"\n  "asset_id": "a"\n}'


@pytest.mark.parametrize(
    ("method", "path", "body", "problem", "line", "column"),
    [
        pytest.param(
            "POST",
            "/v1/events",
            MALFORMED_EVENT,
            "Expecting ',' delimiter",
            4,
            3,
            id="event-missing-comma",
        ),
        pytest.param(
            "POST",
            "/v1/events",
            b'{"type": "onSubmit",\n "project_id": "p",\n "label": {"a": 1,}}',
            "Expecting property name enclosed in double quotes",
            3,
            19,
            id="event-trailing-comma",
        ),
        pytest.param(
            "PUT",
            "/v1/projects/edge/plugins/absent",
            b'{"events":\n  ["caf\xe9"]}',
            "byte 0xe9 is not UTF-8; send the body as UTF-8",
            2,
            8,
            id="activation-not-utf8",  # events: tests/integration/test_event_ingest.py
        ),
        pytest.param(
            "PUT",
            "/v1/projects/edge/plugins/absent",
            b'{"events": ["onSubmit"]',
            "Expecting ',' delimiter",
            1,
            24,
            id="activation-unclosed",
        ),
    ],
)
def test_a_json_syntax_error_is_422_naming_line_and_column(
    server: RunningServer,
    method: str,
    path: str,
    body: bytes,
    problem: str,
    line: int,
    column: int,
) -> None:
    before = stored(server)

    response = server.api.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    message = f"invalid JSON at line {line}, column {column}: {problem}"
    assert response.json() == {
        "code": "invalid_request",
        "message": f"body: {message}; fix the request and send it again",
        "errors": [{"field": "body", "message": message, "line": line, "column": column}],
    }
    assert stored(server) == before


# --------------------------------------------------------------------------- request ids


@pytest.fixture(scope="module")
def failing_routes(server: RunningServer) -> Iterator[None]:
    """Two routes that raise, added to the app ``create_app`` built (as ``serve`` runs it)."""

    async def fails_async() -> None:
        raise RuntimeError("boom from the async route")

    def fails_sync() -> None:
        raise RuntimeError("boom from the sync route")

    app = server.service_app
    app.add_api_route("/v1/test-fails/async", fails_async)
    app.add_api_route("/v1/test-fails/sync", fails_sync)
    yield
    app.router.routes[:] = [
        route for route in app.router.routes if "/test-fails/" not in getattr(route, "path", "")
    ]


@pytest.mark.usefixtures("failing_routes")
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_an_unexpected_exception_is_a_json_500_with_its_request_id_in_the_log(
    server: RunningServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.ERROR, logger="executor.api.request_ids")

    response = server.api.get(f"/v1/test-fails/{kind}", headers={"X-Request-ID": f"trace-{kind}"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == f"trace-{kind}"
    assert response.json() == {
        "code": "internal_error",
        "message": "the executor failed on this request: retry it, and if it fails again give "
        f"the operator the request id trace-{kind}",
        "request_id": f"trace-{kind}",
    }
    [record] = [r for r in caplog.records if f"trace-{kind}" in r.getMessage()]
    assert record.getMessage() == f"GET /v1/test-fails/{kind} failed: request id trace-{kind}"
    assert record.exc_info is not None and str(record.exc_info[1]) == f"boom from the {kind} route"
    assert "Traceback (most recent call last)" in caplog.text


@pytest.mark.usefixtures("failing_routes")
@pytest.mark.parametrize(
    "sent", [None, "", "has space", "x" * 129, "-leading-dash", "caf\xe9".encode("latin-1")]
)
def test_a_missing_or_unfit_request_id_is_replaced_by_a_new_one(
    server: RunningServer, sent: str | bytes | None
) -> None:
    # Sent as bytes (as httpx sends a str value: ASCII-encoded), so one header can be Latin-1.
    value = sent.encode("ascii") if isinstance(sent, str) else sent
    headers = {} if value is None else {b"X-Request-ID": value}
    response = server.api.get("/v1/test-fails/sync", headers=headers)
    made = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert response.json()["request_id"] == made


def test_every_answer_carries_the_request_id(server: RunningServer) -> None:
    sent = {"X-Request-ID": "0b6f2c1e-2d44-4f43-9a39-13bd0bb6c0a1"}
    with httpx.Client(base_url=server.url, headers=sent) as anonymous:
        answers = [
            anonymous.get("/healthz"),  # 200, public
            anonymous.get("/v1/plugins"),  # 401
            server.api.get("/v1/plugins/nope", headers=sent),  # 404
            server.api.post("/v1/events", content=event_body(2 * MiB), headers=sent),  # 413
            server.api.post("/v1/events", json={"type": "onSubmit"}, headers=sent),  # 422: no label
            anonymous.get("/ui/"),  # static files
        ]
    assert [a.status_code for a in answers] == [200, 401, 404, 413, 422, 200]
    assert {a.headers["x-request-id"] for a in answers} == {sent["X-Request-ID"]}
