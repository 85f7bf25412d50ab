"""The platform API gateway: the only way out of a plugin container (docs/gateway.md).

An HTTP/1.1 server on a Unix socket in ``resolved_gateway_socket_dir``; that folder is
bind-mounted read-only into every plugin container at ``/run/executor``, where the runtime's
forwarder relays ``127.0.0.1:<gateway_port>`` to it. Each request must carry a live run
token; it is checked, its path is checked against the project's platform API base, the token
is replaced by the operator's credential, the call is forwarded with body and count caps, and
method, path, status, bytes and duration are recorded on the invocation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx

from executor.gateway.policy import PathRefused, PlatformTargets, Target, check_path
from executor.settings import Settings
from executor.store import gateway as gateway_store
from executor.store.db import Database
from executor.tokens import hash_token, token_from_headers

__all__ = ["CONTAINER_SOCKET_DIR", "SOCKET_NAME", "Gateway", "Incoming", "Reply"]

log = logging.getLogger(__name__)

SOCKET_NAME = "gateway.sock"
CONTAINER_SOCKET_DIR = "/run/executor"
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
# An idle keep-alive connection from a plugin is closed after this long.
IDLE_CONNECTION_S = 120.0
SHUTDOWN_POLL_S = 0.5
MAX_RECORDED_PATH_CHARS = 2000
# A refused body up to this size is read and dropped before the answer, so a client that
# sends its whole body first reads the error instead of a reset connection.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
DRAIN_CHUNK_BYTES = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never sent upstream: the run token, anything that would let a plugin pose as someone or
# somewhere else, and headers httpx sets itself.
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "accept-encoding",
}
KEPT_RESPONSE_HEADERS = frozenset(
    {"content-type", "retry-after", "x-request-id", "etag", "last-modified", "cache-control"}
)
INVOCATION_HEADER = "X-Plugin-Invocation"


@dataclass
class Reply:
    """What the gateway answers; ``close`` ends the connection after it."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    close: bool = False


@dataclass
class Incoming:
    """One request as read from the socket; ``read_body`` reads ``length`` bytes once."""

    method: str
    target: str
    headers: httpx.Headers
    length: int
    read_body: Callable[[], bytes]


def error_reply(status: int, code: str, message: str, *, close: bool = False) -> Reply:
    """A JSON error ``{"code", "message"}`` like the executor API's own."""
    body = json.dumps({"code": code, "message": message}).encode()
    return Reply(status, body, [("Content-Type", "application/json")], message, close)


@dataclass(frozen=True)
class _Grant:
    token_sha256: str
    invocation_id: str
    project_id: str
    generation: int


class Gateway:
    """Checks, rewrites, forwards and records plugin calls to the platform API."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        on_call: Callable[[int], object] | None = None,
    ) -> None:
        """``on_call(status)`` is told of every recorded call (the service counts them)."""
        self.db = db
        self.settings = settings
        self.on_call = on_call
        self.targets = PlatformTargets(settings)
        self.socket_dir: Path = settings.resolved_gateway_socket_dir
        self.socket_path: Path = self.socket_dir / SOCKET_NAME
        self._client = httpx.Client(
            timeout=settings.gateway_upstream_timeout_s, follow_redirects=False, trust_env=False
        )
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> None:
        """Listen on the socket (0666 in a 0755 folder: the token is the authentication)."""
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"gateway socket path {self.socket_path} is longer than "
                f"{MAX_SOCKET_PATH_BYTES} bytes: set EXECUTOR_GATEWAY_SOCKET_DIR to a short folder"
            )
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        # Plugins run as an unprivileged uid: they must traverse the folder and connect.
        self.socket_dir.chmod(0o755)
        self.socket_path.unlink(missing_ok=True)
        server = _UnixHTTPServer(str(self.socket_path), _Handler)
        server.gateway = self
        self.socket_path.chmod(0o666)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(SHUTDOWN_POLL_S,), name="gateway", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.socket_path.unlink(missing_ok=True)
        self._client.close()

    # --- requests

    def handle(self, incoming: Incoming) -> Reply:
        """Answer one plugin request (see the module docstring for the steps)."""
        started = time.monotonic()
        grant, refusal = self._authenticate(incoming.headers)
        if refusal is not None:
            log.warning("gateway refused %s: %s", incoming.method, refusal.error)
            if grant is not None:  # a known run's token: its record shows the refused call
                self._record(grant, incoming, refusal, started)
            return refusal
        assert grant is not None
        reply = self._authorized(grant, incoming)
        self._record(grant, incoming, reply, started)
        return reply

    def _authenticate(self, headers: httpx.Headers) -> tuple[_Grant | None, Reply | None]:
        """The token's grant, and the refusal if it may not call: for a revoked or an expired
        token both (the call is refused but recorded on its run)."""
        token = token_from_headers(headers)
        if token is None:
            return None, error_reply(
                401,
                "token_missing",
                "no run token: send it as 'Authorization: Bearer <token>', "
                "'Authorization: X-API-Key: <token>' or 'X-API-Key: <token>'",
            )
        token_sha256 = hash_token(token)
        with self.db.session() as session:
            row = gateway_store.find_token(session, token_sha256)
            if row is None:
                return None, error_reply(401, "token_unknown", "the run token is not known")
            grant = _Grant(token_sha256, row.invocation_id, row.project_id, row.lease_generation)
            if row.revoked_at is not None:
                return grant, error_reply(
                    401,
                    "token_revoked",
                    "the run this token was issued to has finished (its handler returned "
                    "or its container ended): a run token is good only while its handler runs",
                )
            if not gateway_store.token_current(session, row):
                return grant, error_reply(
                    401,
                    "token_superseded",
                    "the attempt this token was issued to lost its run to another node "
                    "(its lease expired): only the attempt holding the run may call",
                )
            if row.expires_at <= datetime.now(UTC):
                return grant, error_reply(
                    401, "token_expired", "the run token expired at the run's deadline"
                )
            return grant, None

    def _authorized(self, grant: _Grant, incoming: Incoming) -> Reply:
        target = self.targets.for_project(grant.project_id)
        try:
            path_and_query = check_path(incoming.target, target.base_path)
        except PathRefused as exc:
            return error_reply(403, "path_forbidden", f"{exc}: refused", close=incoming.length > 0)
        cap = self.settings.gateway_max_request_bytes
        if incoming.length > cap:
            return error_reply(
                413,
                "request_too_large",
                f"request body of {incoming.length} bytes is over the cap of {cap} bytes",
                close=True,
            )
        with self.db.session() as session:
            allowed = gateway_store.take_call(
                session, grant.token_sha256, self.settings.gateway_max_calls
            )
        if not allowed:
            return error_reply(
                429,
                "too_many_calls",
                f"this run already made its {self.settings.gateway_max_calls} platform calls",
                close=incoming.length > 0,
            )
        body = incoming.read_body() if incoming.length else None
        return self._forward(incoming, target, path_and_query, body, grant.invocation_id)

    def _upstream_headers(
        self, headers: httpx.Headers, target: Target, invocation_id: str
    ) -> list[tuple[str, str]]:
        dropped = DROPPED_REQUEST_HEADERS
        kept = [(k, v) for k, v in headers.multi_items() if k.lower() not in dropped]
        if target.credential is not None:
            kept.append(
                (
                    self.settings.platform_credential_header,
                    self.settings.platform_credential_prefix + target.credential,
                )
            )
        kept.append((INVOCATION_HEADER, invocation_id))
        return kept

    def _forward(
        self,
        incoming: Incoming,
        target: Target,
        path_and_query: str,
        body: bytes | None,
        invocation_id: str,
    ) -> Reply:
        headers = self._upstream_headers(incoming.headers, target, invocation_id)
        where = f"{incoming.method} {path_and_query.split('?', 1)[0]}"
        try:
            with self._client.stream(
                incoming.method, target.url_for(path_and_query), headers=headers, content=body
            ) as response:
                return self._read_response(response, where)
        except httpx.TimeoutException:
            return error_reply(
                504,
                "platform_timeout",
                f"the platform API did not answer {where} within "
                f"{self.settings.gateway_upstream_timeout_s:g} s",
            )
        except httpx.HTTPError as exc:
            return error_reply(
                502,
                "platform_unavailable",
                f"the platform API could not be reached for {where} "
                f"({type(exc).__name__}: {exc}); try again later",
            )

    def _read_response(self, response: httpx.Response, where: str) -> Reply:
        cap = self.settings.gateway_max_response_bytes
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                return error_reply(
                    502,
                    "response_too_large",
                    f"the platform's response to {where} is over the cap of {cap} bytes",
                )
            chunks.append(chunk)
        headers = [(k, v) for k, v in response.headers.items() if k in KEPT_RESPONSE_HEADERS]
        return Reply(response.status_code, b"".join(chunks), headers)

    def _record(self, grant: _Grant, incoming: Incoming, reply: Reply, started: float) -> None:
        path = incoming.target.split("?", 1)[0][:MAX_RECORDED_PATH_CHARS]
        with self.db.session() as session:
            recorded = gateway_store.add_call(
                session,
                grant.generation,
                invocation_id=grant.invocation_id,
                method=incoming.method[:16],
                path=path,
                status=reply.status,
                request_bytes=incoming.length,
                response_bytes=len(reply.body),
                duration_ms=int((time.monotonic() - started) * 1000),
                error=reply.error,
            )
        if not recorded:
            log.warning(
                "invocation %s: a call of an attempt that lost its lease is not recorded",
                grant.invocation_id,
            )
        if self.on_call is not None:
            self.on_call(reply.status)


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    gateway: Gateway


class _Handler(BaseHTTPRequestHandler):
    """Reads one HTTP/1.1 request at a time off the socket and hands it to the gateway."""

    protocol_version = "HTTP/1.1"
    server_version = "plugin-executor-gateway"
    sys_version = ""
    timeout = IDLE_CONNECTION_S
    server: _UnixHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("gateway: " + format, *args)

    def address_string(self) -> str:
        return "plugin"

    def _serve(self) -> None:
        try:
            reply = self._reply()
        except Exception:
            log.exception("gateway error on %s", self.command)
            reply = error_reply(
                500,
                "gateway_error",
                "the executor's gateway failed; see the executor log",
                close=True,
            )
        self._send(reply)

    def _reply(self) -> Reply:
        if self.headers.get("Transfer-Encoding"):
            return error_reply(
                411, "length_required", "send the request body with Content-Length", close=True
            )
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return error_reply(400, "bad_request", "invalid Content-Length", close=True)
        headers = httpx.Headers(list(self.headers.items()))
        read = [False]
        incoming = Incoming(self.command, self.path, headers, length, self._reader(length, read))
        reply = self.server.gateway.handle(incoming)
        if not read[0] and 0 < length <= DRAIN_MAX_BYTES:
            self._drain(length)
        return reply

    def _reader(self, length: int, read: list[bool]) -> Callable[[], bytes]:
        def read_body() -> bytes:
            read[0] = True
            return self.rfile.read(length)

        return read_body

    def _drain(self, length: int) -> None:
        with contextlib.suppress(OSError):
            while length > 0:
                chunk = self.rfile.read(min(length, DRAIN_CHUNK_BYTES))
                if not chunk:
                    return
                length -= len(chunk)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve
