"""A round-robin HTTP proxy on loopback, as a load balancer in front of API processes.

Each request goes to the next backend in turn (not each connection: the Kili SDK keeps its
connection open), and is recorded with the backend that served it. It answers HTTP/1.0:
the response streams until the connection closes, which serves SSE as well.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

__all__ = ["Forwarded", "RoundRobinProxy", "round_robin_proxy"]

# Headers of one hop, never forwarded (httpx sets Host and Content-Length itself).
HOP_HEADERS = {
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy forwarded: to which backend (index), and its answer."""

    method: str
    path: str
    backend: int
    status: int
    body: bytes


class RoundRobinProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, backends: list[str]) -> None:
        super().__init__(("127.0.0.1", port), _Forward)
        self.backends = backends
        self.forwarded: list[Forwarded] = []
        self._turns = itertools.cycle(range(len(backends)))
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_backend(self) -> int:
        with self._lock:
            return next(self._turns)

    def record(self, forwarded: Forwarded) -> None:
        with self._lock:
            self.forwarded.append(forwarded)


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: RoundRobinProxy

    def _forward(self) -> None:
        assert "chunked" not in self.headers.get("Transfer-Encoding", ""), "send a length"
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        backend = self.server.next_backend()
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_HEADERS]
        url = self.server.backends[backend] + self.path
        with (
            httpx.Client(timeout=300) as client,
            client.stream(self.command, url, headers=headers, content=body) as response,
        ):
            self.server.record(
                Forwarded(self.command, self.path, backend, response.status_code, body)
            )
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in HOP_HEADERS - {"content-length"}:
                    self.send_header(key, value)
            self.end_headers()
            for chunk in response.iter_raw():
                self.wfile.write(chunk)
                self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: ``forwarded`` records each request."""


@contextlib.contextmanager
def round_robin_proxy(port: int, backends: list[str]) -> Iterator[RoundRobinProxy]:
    proxy = RoundRobinProxy(port, backends)
    thread = threading.Thread(target=proxy.serve_forever, name="round-robin", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()
