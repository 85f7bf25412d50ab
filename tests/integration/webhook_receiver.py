"""A webhook receiver on loopback for tests: real HTTP, every request recorded."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LORIS_BYTE_S", "TRICKLE_S", "Received", "Receiver", "serve_receiver"]

TRICKLE_S = 0.2
LORIS_BYTE_S = 5.0  # a slow-loris receiver's pace (issue 22): one byte every 5 s


def group_of(path: str) -> str:
    """``/loris/a1`` -> ``/loris``."""
    return "/" + path.lstrip("/").split("/", 1)[0]


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
    ``TRICKLE_S``, the head never ends), ``/loris/<name>`` (slow loris: the status line,
    then one byte every ``LORIS_BYTE_S`` until the test ends). ``open`` counts the
    connections the receiver is still answering by the first segment of their path
    (``/loris``), ``peak`` the most of them at once."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)

    def opened(self, path: str) -> None:
        group = group_of(path)
        with self.lock:
            self.open[group] += 1
            self.peak[group] = max(self.peak[group], self.open[group])

    def closed(self, path: str) -> None:
        with self.lock:
            self.open[group_of(path)] -= 1

    def open_now(self, group: str) -> int:
        with self.lock:
            return self.open[group]

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


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver  # set on the subclass each server gets

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.receiver.lock:
            self.receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
        self.receiver.opened(self.path)
        try:
            self.answer()
        finally:
            self.receiver.closed(self.path)

    def answer(self) -> None:
        if self.path.startswith("/loris/"):
            self.loris()
            return
        if self.path == "/trickle":
            self.trickle()
            return
        status, headers = self.receiver.answer(self.path)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def loris(self) -> None:
        """A status line, then one byte every ``LORIS_BYTE_S``: every read comes in
        time, the answer never ends."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.receiver.released.wait(LORIS_BYTE_S):
            try:
                self.wfile.write(b"z")
            except OSError:  # the executor cut it off
                return

    def trickle(self) -> None:
        """A status line, then a header line now and then, never the end of the head."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not self.receiver.released.wait(TRICKLE_S):
            try:
                self.wfile.write(b"X-Slow: still here\r\n")
            except OSError:  # the executor cut it off
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (its ``port`` set), stopped (and its hangs released) on exit."""
    found = Receiver()
    handler = type("Handler", (_Handler,), {"receiver": found})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
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
