"""Per-call latency through the platform API gateway, next to a direct call to the same
platform stand-in in the same run.

    .venv/bin/python -m bench --section gateway [--short]

A platform stand-in (a stdlib HTTP server answering every GET with a small JSON body) and
the executor's gateway each run in a process of their own. The gateway is ``LocalGateway``:
the server's ``Gateway`` (uvicorn, token check, path policy, call counter, audit record) on
a throw-away SQLite store, as ``plugin-executor run --api-url`` uses it, with one run's
token. This process sends GETs on one keep-alive connection through the gateway's Unix
socket and on one straight to the stand-in, alternating blocks of ``BLOCK`` calls of each,
after ``WARMUP`` calls of each.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.ingest import percentile

__all__ = ["measure_calls"]

REPO = Path(__file__).resolve().parent.parent
BLOCK = 10
WARMUP = 20
ANSWER = b'{"id": "asset-1", "status": "LABELED"}'
PROJECT = "bench"
TIMEOUT_S = 30.0


class _StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


def serve_platform() -> None:
    """The stand-in on a free loopback port (printed) until stdin closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


def serve_gateway(api_url: str) -> None:
    """A ``LocalGateway`` forwarding to ``api_url``, one run's token (printed with the
    socket path) until stdin closes."""
    from executor.cli.local_gateway import LocalGateway
    from executor.settings import Settings

    deadline = datetime.now(UTC) + timedelta(hours=1)
    with LocalGateway(Settings(), api_url) as gateway:
        info = gateway.api_info("bench-run", "bench", PROJECT, "onSubmit", deadline)
        socket_path = gateway.socket_dir / "gateway.sock"
        print(json.dumps({"socket": str(socket_path), "token": info.token}), flush=True)
        sys.stdin.read()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("gateway", timeout=TIMEOUT_S)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


@contextlib.contextmanager
def _helper(*args: str, env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """``python -m bench.gateway ARGS`` in its own process: what it printed, until exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield json.loads(process.stdout.readline())
    finally:
        process.stdin.close()
        process.stdout.close()
        if process.wait(TIMEOUT_S) != 0:
            raise RuntimeError(f"bench.gateway {args[0]} ended with {process.returncode}")


def _timed_get(connection: http.client.HTTPConnection, path: str, token: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path, headers={"X-API-Key": token})
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    assert response.status == 200 and body == ANSWER, (response.status, body)
    return elapsed * 1000


def measure_calls(calls: int) -> dict[str, list[float]]:
    """Milliseconds per GET, ``calls`` of each: ``gateway`` (through it) and ``direct``."""
    with _helper("platform") as platform:
        api_url = f"http://127.0.0.1:{platform['port']}/api"
        # One run's calls are capped; the bench makes more than a run may.
        cap = {"EXECUTOR_GATEWAY_MAX_CALLS": str(calls + WARMUP)}
        with _helper("gateway", api_url, env=cap) as gateway:
            through = _UnixConnection(gateway["socket"])
            direct = http.client.HTTPConnection("127.0.0.1", platform["port"], timeout=TIMEOUT_S)
            with contextlib.closing(through), contextlib.closing(direct):
                return _alternate(through, direct, gateway["token"], calls)


def _alternate(
    through: http.client.HTTPConnection,
    direct: http.client.HTTPConnection,
    token: str,
    calls: int,
) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"gateway": [], "direct": []}
    paths = [f"/api/assets/{i}" for i in range(WARMUP + calls)]
    for i in range(WARMUP):
        _timed_get(through, paths[i], token)
        _timed_get(direct, paths[i], token)
    for start in range(WARMUP, WARMUP + calls, BLOCK):
        block = paths[start : min(start + BLOCK, WARMUP + calls)]
        figures["gateway"] += [_timed_get(through, p, token) for p in block]
        figures["direct"] += [_timed_get(direct, p, token) for p in block]
    return figures


def summary(figures: dict[str, list[float]]) -> dict[str, float]:
    """p50, p99 and mean (ms) of each series."""
    return {
        f"{series}_{name}_ms": value
        for series, values in figures.items()
        for name, value in (
            ("p50", percentile(values, 0.5)),
            ("p99", percentile(values, 0.99)),
            ("mean", sum(values) / len(values)),
        )
    }


if __name__ == "__main__":
    if sys.argv[1] == "platform":
        serve_platform()
    else:
        serve_gateway(sys.argv[2])
