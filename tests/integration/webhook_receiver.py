"""A webhook receiver on loopback for tests: real HTTP, every request recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TRICKLE_S", "Received", "Receiver", "serve_receiver"]

TRICKLE_S = 0.2


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on loopback that records every request; paths choose its answer:
    ``/ok``, ``/flaky/<n>`` (503 n times, then 200), ``/redirect`` (302 to ``/target``),
    ``/hang`` (answers only when the test ends), ``/trickle`` (a header line every
    ``TRICKLE_S``, the head never ends)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def answer(self, path: str) -> tuple[int, dict[str, str]]:
        if path.startswith("/flaky/"):
            failures = int(path.rsplit("/", 1)[1])
            return (503 if len(self.hits(path)) <= failures else 200), {}
        if path == "/redirect":
            return 302, {"Location": f"http://127.0.0.1:{self.port}/target"}
        if path == "/hang":
            self.released.wait()
        return 200, {}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            if self.path == "/trickle":
                self.trickle()
                return
            status, headers = receiver.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def trickle(self) -> None:
            """A status line, then a header line now and then, never the end of the head."""
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not receiver.released.wait(TRICKLE_S):
                try:
                    self.wfile.write(b"X-Slow: still here\r\n")
                except OSError:  # the executor cut it off
                    return

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (its ``port`` set), stopped (and its hangs released) on exit."""
    found = Receiver()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    httpd.daemon_threads = True
    found.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.released.set()
        httpd.shutdown()
        httpd.server_close()
