"""A stand-in for the labeling platform's API (and a Kili-compatible GraphQL endpoint).

A real HTTP server on loopback that records every request it gets (method, raw path,
headers, body) and answers like a small platform: REST calls echo what they got, ``POST
.../graphql`` answers the ``createIssues`` and ``sendAssetsBackToQueue`` mutations the way
Kili's API does, ``GET .../wait`` blocks until the test calls ``release()``, ``GET .../big``
returns ``?bytes=N`` bytes.

It honours ``Idempotency-Key`` as docs/gateway.md asks of a platform: a request with a key
it answered before is answered again from what it stored, without acting (``acted`` lists
the requests it acted on; ``requests`` everything it got). Under a path segment
``IGNORES_KEYS`` it stands for a platform that ignores the key: it acts every time.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import sys
import threading
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WAIT_LIMIT_S = 30.0
IGNORES_KEYS = "/unkeyed/"
MAX_STORED_ANSWERS = 10_000  # the oldest key is forgotten past this
_FIELD = re.compile(r"data\s*:\s*(\w+)")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    header_lines: list[tuple[str, str]] = field(default_factory=list)  # as sent, repeats kept

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class PlatformStandIn:
    """The server's address and what it received."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    acted: list[Recorded] = field(default_factory=list)
    answers: OrderedDict[str, _Stored] = field(default_factory=OrderedDict)
    key_locks: dict[str, threading.Lock] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        self.released.set()

    def bodies_with(self, key: str) -> list[Any]:
        """The JSON bodies received that have ``key`` at top level."""
        with self.lock:
            bodies = [r.json() for r in self.requests if r.body.startswith(b"{")]
        return [b for b in bodies if key in b]


@dataclass(frozen=True)
class _Stored:
    """The answer to a keyed request, and which request it was (method, path, body)."""

    fingerprint: str
    status: int
    data: bytes
    content_type: str


def _fingerprint(recorded: Recorded) -> str:
    digest = hashlib.sha256(recorded.body).hexdigest()
    return f"{recorded.method} {recorded.path} {digest}"


def per_invocation(requests: list[Recorded], suffix: str, *, keyed: bool) -> Counter[str]:
    """How many of ``requests`` to a path ending in ``suffix`` each invocation made, where
    the stand-in honours Idempotency-Key (``keyed``) or where it ignores it."""
    return Counter(
        r.headers["x-plugin-invocation"]
        for r in requests
        if r.path.endswith(suffix) and (IGNORES_KEYS not in r.path) == keyed
    )


def _graphql_answer(body: dict[str, Any]) -> dict[str, Any]:
    match = _FIELD.search(body.get("query", ""))
    operation = match.group(1) if match else ""
    variables = body.get("variables") or {}
    if operation == "createIssues":
        return {"data": {"data": [{"id": f"issue-{i}"} for i, _ in enumerate(variables["issues"])]}}
    if operation == "sendAssetsBackToQueue":
        ids = variables["where"]["idIn"]
        done = [{"assetId": i, "externalId": f"ext-{i}"} for i in ids]
        return {"data": {"data": {"succeeded": done, "declined": [], "failed": []}}}
    return {"errors": [{"message": f"stand-in does not know {operation!r}"}], "data": None}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the caller went away mid-body: nothing to act on
            self.close_connection = True
            return
        standin = self.server.standin
        headers = {k.lower(): v for k, v in self.headers.items()}
        recorded = Recorded(self.command, self.path, headers, body, list(self.headers.items()))
        with standin.lock:
            standin.requests.append(recorded)
        key = headers.get("idempotency-key")
        if key is None or IGNORES_KEYS in self.path:
            self._send(*self._act(recorded))
            return
        with standin.lock:
            key_lock = standin.key_locks.setdefault(key, threading.Lock())
        with key_lock:  # the same key twice at once: the second waits for the first's answer
            self._send(*self._once(recorded, key))

    def _once(self, recorded: Recorded, key: str) -> tuple[int, bytes, str]:
        """The stored answer to ``key``, or the answer of acting on the request, stored."""
        standin = self.server.standin
        with standin.lock:
            stored = standin.answers.get(key)
        if stored is not None:
            if stored.fingerprint != _fingerprint(recorded):
                error = {"code": "idempotency_key_reused", "message": f"{key} was another call"}
                return 422, json.dumps(error).encode(), "application/json"
            return stored.status, stored.data, stored.content_type
        status, data, content_type = self._act(recorded)
        if status < 500:  # a failure is not stored: the next try may act
            with standin.lock:
                standin.answers[key] = _Stored(_fingerprint(recorded), status, data, content_type)
                while len(standin.answers) > MAX_STORED_ANSWERS:
                    forgotten, _ = standin.answers.popitem(last=False)
                    standin.key_locks.pop(forgotten, None)
        return status, data, content_type

    def _act(self, recorded: Recorded) -> tuple[int, bytes, str]:
        standin = self.server.standin
        with standin.lock:
            standin.acted.append(recorded)
        path = urllib.parse.urlsplit(recorded.path).path
        status = 200
        payload: dict[str, object] = {"method": recorded.method, "path": recorded.path}
        if path.endswith("/graphql"):
            payload = _graphql_answer(json.loads(recorded.body))
        elif path.endswith("/wait"):
            payload = {"released": standin.released.wait(WAIT_LIMIT_S)}
        elif path.endswith("/big"):
            query = urllib.parse.urlsplit(recorded.path).query
            size = int(urllib.parse.parse_qs(query)["bytes"][0])
            return 200, b"x" * size, "text/plain"
        elif recorded.method == "POST" and path.endswith("/issues"):
            status = 201
            payload = {"id": "issue-1", "received": json.loads(recorded.body or b"null")}
        return status, json.dumps(payload).encode(), "application/json"

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Set-Cookie", "session=platform-secret")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: PlatformStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that gave up on a held answer (the gateway's timeout test) is no error.
        if not isinstance(sys.exception(), BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


@contextmanager
def platform_standin() -> Iterator[PlatformStandIn]:
    """Run the stand-in on a free loopback port for the duration of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.standin = PlatformStandIn(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield server.standin
    finally:
        server.standin.release()
        server.shutdown()
        server.server_close()
        thread.join()


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket (the gateway's): targets are sent as written."""

    def __init__(self, path: str) -> None:
        super().__init__("gateway", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)
