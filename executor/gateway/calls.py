"""What the gateway does with one plugin request (docs/gateway.md), as an ASGI app.

Each request must carry a live run token; it is checked, its path is checked against the
project's platform API base (``admission``), the token is replaced by the operator's
credential, the call is forwarded with body and count caps (``forward``), and method,
path, status, bytes and duration are recorded on the invocation (``recording``). A token
of a run of this process is checked and counted in memory (``executor.gateway.live``), and
its call recorded after the answer; any other token is checked, counted and recorded in
the store before the answer. Store work runs on a small thread pool of its own and the
platform call on the event loop without blocking it, so the loop never waits on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import httpx
from starlette.types import Receive, Scope, Send

from executor.gateway.admission import Admission, Admitted
from executor.gateway.exchange import Body, request_target, send_reply, settle_body
from executor.gateway.forward import Forwarder, Incoming, Reply, error_reply
from executor.gateway.live import LiveTokens
from executor.gateway.recording import CallRecorder
from executor.settings import Settings
from executor.store.db import Database

__all__ = ["Calls"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Threads for the store's blocking calls (token lookup, call counter, audit record): the
# bound on the gateway's store connections, within SQLAlchemy's default pool of 5 + 10.
STORE_THREADS = 8
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Calls:
    """The gateway's ASGI app; ``running()`` holds its client and store threads."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        on_call: Callable[[int], object] | None = None,
        live: LiveTokens | None = None,
    ) -> None:
        """``on_call(status)`` is told of every recorded call (the service counts them);
        ``live`` holds the tokens this process's runner minted."""
        self.settings = settings
        self.live = live or LiveTokens()
        self.admission = Admission(db, settings, self.live)
        self.recorder = CallRecorder(db, self.live, on_call)
        self._store: ThreadPoolExecutor | None = None
        self._forwarder: Forwarder | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """While the server serves: the platform client and the threads are there."""
        self._forwarder = Forwarder(self.settings)
        self._store = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gateway-store")
        self.recorder.threads = self._store
        try:
            yield
        finally:
            self._store.shutdown(wait=True)
            self._forwarder.close()
            self._store = self._forwarder = self.recorder.threads = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", scope["type"]  # lifespan and websockets are off
        body = Body(receive)
        headers = httpx.Headers(scope["headers"])
        after: list[Callable[[], None]] = []  # the call's record, once it is answered
        try:
            incoming = _incoming(scope, headers)
            if isinstance(incoming, Reply):
                reply = incoming
            else:
                reply = await self._handle(incoming, body, after)
        except Exception:
            log.exception("gateway error on %s", scope["method"])
            reply = error_reply(
                500,
                "gateway_error",
                "the executor's gateway failed; see the executor log",
                close=True,
            )
        reply = await settle_body(headers, body, reply)
        try:
            await send_reply(send, reply)
        finally:
            for then in after:
                then()

    async def _handle(
        self, incoming: Incoming, body: Body, after: list[Callable[[], None]]
    ) -> Reply:
        """Answer one plugin request (see the module docstring for the steps); what to do
        once it is answered goes to ``after``."""
        started = time.monotonic()
        admitted = self._admit_live(incoming, started, after)
        if admitted is None:  # not a token of a run this process holds: the store decides
            admitted = await self._on(self._store, self._admit, incoming, started)
        if isinstance(admitted, Reply):
            return admitted
        content = await body.read() if incoming.length else None
        if incoming.length and content is None:
            reply = error_reply(
                400,
                "body_incomplete",
                "the connection closed before the whole request body arrived",
                close=True,
            )
        else:
            assert self._forwarder is not None
            reply = await self._forwarder.forward(
                incoming,
                admitted.target,
                admitted.path_and_query,
                content,
                admitted.grant.invocation_id,
                admitted.ordinal,
            )
        if admitted.counted_here:  # a run of this process: its runner waits for the record
            after.append(self.recorder.record_later(admitted, incoming, reply, started))
        else:
            await self._on(
                self._store, self.recorder.record, admitted.grant, incoming, reply, started
            )
        return reply

    def _admit_live(
        self, incoming: Incoming, started: float, after: list[Callable[[], None]]
    ) -> Admitted | Reply | None:
        """``Admission.admit_live``; a refusal's record queued to ``after``."""
        found = self.admission.admit_live(incoming)
        if found is None:
            return None
        grant, admitted = found
        if isinstance(admitted, Reply):
            after.append(self.recorder.record_later(grant, incoming, admitted, started))
        return admitted

    def _admit(self, incoming: Incoming, started: float) -> Admitted | Reply:
        """In one trip to the store threads: the call may be forwarded, or its refusal
        (recorded on its run when the token names one)."""
        grant, admitted = self.admission.admit(incoming)
        if isinstance(admitted, Reply) and grant is not None:
            self.recorder.record(grant, incoming, admitted, started)  # shown on its run
        return admitted

    @staticmethod
    async def _on(
        threads: ThreadPoolExecutor | None,
        call: Callable[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``call`` run on one of ``threads``, the event loop free meanwhile."""
        assert threads is not None, "Calls.running() first"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads, functools.partial(call, *args, **kwargs))


def _incoming(scope: Scope, headers: httpx.Headers) -> Incoming | Reply:
    """The request, or its refusal: a method the gateway does not forward, or a body
    without Content-Length."""
    method = scope["method"]
    if method not in METHODS:
        return error_reply(
            405,
            "method_not_allowed",
            f"the gateway forwards {', '.join(METHODS)} only, not {method}",
            headers=[("Allow", ", ".join(METHODS))],
        )
    if "transfer-encoding" in headers:
        return error_reply(
            411, "length_required", "send the request body with Content-Length", close=True
        )
    # The server held the request to its Content-Length (a malformed one never gets here).
    length = int(headers.get("content-length") or 0)
    return Incoming(method, request_target(scope), headers, length)
