"""The platform API gateway's server: the only way out of a plugin container (docs/gateway.md).

uvicorn (its h11 protocol) on a Unix socket in ``resolved_gateway_socket_dir``, with its own
event loop in a thread of its own, so the API's load and the gateway's never wait on each
other. That folder is bind-mounted read-only into every plugin container at
``/run/executor``, where the runtime's forwarder relays ``127.0.0.1:<gateway_port>`` to it.
What the gateway does with each request is in ``executor.gateway.calls``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from executor.gateway.calls import Calls
from executor.gateway.forward import Reply, error_reply
from executor.gateway.live import LiveTokens
from executor.settings import Settings
from executor.store.db import Database

__all__ = ["CONTAINER_SOCKET_DIR", "SOCKET_NAME", "Gateway", "JsonErrorH11"]

log = logging.getLogger(__name__)

SOCKET_NAME = "gateway.sock"
CONTAINER_SOCKET_DIR = "/run/executor"
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
# An idle keep-alive connection from a plugin is closed after this long.
IDLE_CONNECTION_S = 120.0
# The request line and headers together: h11 answers 431 once an unfinished head is longer.
MAX_HEAD_BYTES = 16 * 1024
# At stop, calls in flight finish (and are recorded) unless the platform takes longer than
# its own timeout plus this.
SHUTDOWN_MARGIN_S = 10.0


class JsonErrorH11(H11Protocol):
    """uvicorn's h11 protocol; a request h11 refuses gets a JSON error ``{"code",
    "message"}`` (uvicorn's own is plain text). The gateway's and the API's."""

    def send_400_response(self, msg: str) -> None:
        # Called while h11's error is being handled: its reason says what was wrong.
        # A request whose head was read and not yet answered: what h11 refused is its body.
        in_body = self.cycle is not None and not self.cycle.response_complete
        reply = protocol_error_reply(sys.exception(), in_body=in_body)
        headers = [(name.encode(), value.encode()) for name, value in reply.headers]
        headers += [(b"content-length", str(len(reply.body)).encode()), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=reply.status, headers=headers),
            h11.Data(data=reply.body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


class _GatewayH11(JsonErrorH11):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Plugin calls are in their runs' records, not in the API's access log (a plugin
        # may put anything in a query). Per connection: uvicorn's own switch empties the
        # "uvicorn.access" logger the API server shares.
        self.access_log = False


def protocol_error_reply(error: BaseException | None, *, in_body: bool = False) -> Reply:
    """The answer to a request that is not valid HTTP/1.1, from h11's reason and status;
    ``in_body``: h11 refused the body (only a chunked one can be refused)."""
    reason = str(error) if error is not None else "malformed request"
    if in_body:
        return error_reply(
            400,
            "bad_chunked_body",
            "the request body is sent as 'Transfer-Encoding: chunked' but is not valid "
            f"chunked encoding ({reason}): send the body with Content-Length",
            close=True,
        )
    status = getattr(error, "error_status_hint", 400)
    if status == 431:
        return error_reply(
            431,
            "headers_too_large",
            f"the request line and headers are over {MAX_HEAD_BYTES} bytes: send fewer or "
            "shorter headers",
            close=True,
        )
    if status == 501:  # h11's answer to a transfer coding other than chunked
        return error_reply(
            411, "length_required", "send the request body with Content-Length", close=True
        )
    return error_reply(400, "bad_request", f"not a valid HTTP/1.1 request: {reason}", close=True)


class _Server(uvicorn.Server):
    """``ready`` is set once startup is over, whether it worked (``started``) or not."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.failure: BaseException | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class Gateway:
    """The gateway server: ``start()`` listens on the socket, ``stop()`` ends it."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        on_call: Callable[[int], object] | None = None,
        live: LiveTokens | None = None,
    ) -> None:
        """``on_call(status)`` is told of every recorded call (the service counts them);
        ``live`` holds the tokens of the runs of this process (``executor.gateway.live``)."""
        self.settings = settings
        self.calls = Calls(db, settings, on_call, live)
        self.live = self.calls.live
        self.socket_dir: Path = settings.resolved_gateway_socket_dir
        self.socket_path: Path = self.socket_dir / SOCKET_NAME
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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
        server = _Server(self._config())
        thread = threading.Thread(target=self._serve, args=(server,), name="gateway")
        thread.start()
        server.ready.wait()
        if not server.started:
            thread.join()
            raise RuntimeError(
                f"the gateway could not listen on {self.socket_path}: {server.failure!r}"
            )
        self.socket_path.chmod(0o666)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop listening, let the calls in flight finish and be recorded, remove the socket."""
        if self._server is not None:
            self._server.should_exit = True
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.socket_path.unlink(missing_ok=True)

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.calls,
            uds=str(self.socket_path),
            http=_GatewayH11,
            ws="none",
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            server_header=False,
            log_config=None,
            timeout_keep_alive=int(IDLE_CONNECTION_S),
            timeout_graceful_shutdown=int(
                self.settings.gateway.upstream_timeout_s + SHUTDOWN_MARGIN_S
            ),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )

    def _serve(self, server: _Server) -> None:
        try:
            asyncio.run(self._serve_async(server))
        except BaseException as exc:  # uvicorn exits (SystemExit) when it cannot bind
            log.exception("the gateway server stopped on an error")
            server.failure = exc
            server.ready.set()

    async def _serve_async(self, server: _Server) -> None:
        with self.calls.running():
            await server.serve()
