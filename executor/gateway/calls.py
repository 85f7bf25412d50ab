"""What the gateway does with one plugin request (docs/gateway.md), as an ASGI app.

Each request must carry a live run token; it is checked, its path is checked against the
project's platform API base, the token is replaced by the operator's credential, the call
is forwarded with body and count caps, and method, path, status, bytes and duration are
recorded on the invocation. A token of a run of this process is checked and counted in
memory (``executor.gateway.live``), and its call recorded after the answer; any other
token is checked, counted and recorded in the store before the answer. Store work runs on
a small thread pool of its own and the platform call on another, so the event loop never
waits on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import ParamSpec, TypeVar

import httpx
from starlette.types import Receive, Scope, Send

from executor.gateway.forward import (
    MAX_UPSTREAM_CALLS,
    Forwarder,
    Incoming,
    Reply,
    error_reply,
)
from executor.gateway.live import LiveTokens
from executor.gateway.policy import PathRefused, PlatformTargets, Target, check_path
from executor.settings import Settings
from executor.store import gateway as gateway_store
from executor.store.db import Database
from executor.store.gateway import CallRefused
from executor.tokens import hash_token, token_from_headers

__all__ = ["DRAIN_MAX_BYTES", "Calls"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

MAX_RECORDED_PATH_CHARS = 2000
# A refused body up to this size is read and dropped before the answer, so a client that
# sends its whole body first reads the error instead of a reset connection.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
# A refused chunked body is read only while its chunks keep coming. A body that is not
# chunked at all (a plain body under "Transfer-Encoding: chunked") never completes a chunk
# line, so h11 would wait for it for ever: once no chunk came for this long, it is refused.
CHUNK_STALL_S = 5.0
# Threads for the store's blocking calls (token lookup, call counter, audit record): the
# bound on the gateway's store connections, within SQLAlchemy's default pool of 5 + 10.
STORE_THREADS = 8
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TOKEN_REFUSALS = {
    CallRefused.UNKNOWN: "the run token is not known",
    CallRefused.REVOKED: "the run this token was issued to has finished (its handler returned "
    "or its container ended): a run token is good only while its handler runs",
    CallRefused.SUPERSEDED: "the attempt this token was issued to lost its run (its lease "
    "expired, so another node may run it now, or the run was queued again): only the attempt "
    "holding the run may call",
    CallRefused.EXPIRED: "the run token expired at the run's deadline",
}


@dataclass(frozen=True)
class _Grant:
    token_sha256: str
    invocation_id: str
    project_id: str
    generation: int  # the lease generation of the attempt the token was minted for


@dataclass(frozen=True)
class _Admitted:
    """A call that passed every check: where it goes."""

    grant: _Grant
    target: Target
    path_and_query: str
    ordinal: int  # of the call in its attempt, from 1: the platform's idempotency key
    counted_here: bool  # by ``LiveTokens`` (a run of this process): recorded after the answer


@dataclass(frozen=True)
class _Unrecorded:
    """An answered call whose record is queued."""

    grant: _Grant
    incoming: Incoming
    reply: Reply
    duration_ms: int
    # Its ordinal, when counted in memory: the token's count in the store is brought up
    # to it (a process that restarts during the run goes on counting from there).
    counted: int | None

    def fields(self) -> dict[str, object]:
        """The columns of its record (``executor.store.gateway.add_call``)."""
        return {
            "invocation_id": self.grant.invocation_id,
            "method": self.incoming.method[:16],
            "path": self.incoming.target.split("?", 1)[0][:MAX_RECORDED_PATH_CHARS],
            "status": self.reply.status,
            "request_bytes": self.incoming.length,
            "response_bytes": len(self.reply.body),
            "duration_ms": self.duration_ms,
            "error": self.reply.error,
        }


class Drained(Enum):
    """What is left of a refused body after the gateway read and dropped it."""

    ALL = "all"  # read to its end (or the client left)
    LEFT = "left"  # over the drain bound, or not sent until 100 Continue: close after
    STALLED = "stalled"  # a chunked body whose next chunk did not come


class _Body:
    """The request body as the server hands it over; remembers whether it was read."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.touched = False

    async def read(self) -> bytes | None:
        """The whole body, or None when the client left before sending all of it."""
        self.touched = True
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def drain(self, stall_s: float | None = None) -> Drained:
        """Read and drop the body, up to ``DRAIN_MAX_BYTES``; with ``stall_s``, only while
        each part comes within ``stall_s``."""
        self.touched = True
        drained = 0
        while drained <= DRAIN_MAX_BYTES:
            try:
                message = await asyncio.wait_for(self._receive(), stall_s)
            except TimeoutError:
                return Drained.STALLED
            if message["type"] != "http.request":  # the client went away
                return Drained.ALL
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return Drained.ALL
        return Drained.LEFT


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
        self.db = db
        self.settings = settings
        self.on_call = on_call
        self.live = live or LiveTokens()
        self._unrecorded: list[_Unrecorded] = []
        self._unrecorded_lock = threading.Lock()
        self._writing = False  # a write of the queued records is on its way
        self.targets = PlatformTargets(settings)
        self._store: ThreadPoolExecutor | None = None
        self._upstream: ThreadPoolExecutor | None = None
        self._forwarder: Forwarder | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """While the server serves: the platform client and the threads are there."""
        self._forwarder = Forwarder(self.settings)
        self._store = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gateway-store")
        self._upstream = ThreadPoolExecutor(MAX_UPSTREAM_CALLS, thread_name_prefix="gateway-up")
        try:
            yield
        finally:
            self._upstream.shutdown(wait=True)
            self._store.shutdown(wait=True)
            self._forwarder.close()
            self._upstream = self._store = self._forwarder = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", scope["type"]  # lifespan and websockets are off
        body = _Body(receive)
        headers = httpx.Headers(scope["headers"])
        after: list[Callable[[], None]] = []  # the call's record, once it is answered
        try:
            reply = await self._answer(scope, headers, body, after)
        except Exception:
            log.exception("gateway error on %s", scope["method"])
            reply = error_reply(
                500,
                "gateway_error",
                "the executor's gateway failed; see the executor log",
                close=True,
            )
        if not body.touched and _has_body(headers):
            left = await _drop_body(headers, body)
            if left is Drained.STALLED:
                reply = error_reply(
                    400,
                    "bad_chunked_body",
                    "the request body is sent as 'Transfer-Encoding: chunked' but no valid "
                    f"chunk came within {CHUNK_STALL_S:g} s: send the body with Content-Length",
                    close=True,
                )
            elif left is Drained.LEFT:
                reply.close = True  # unread bytes would be taken for the next request
        try:
            await _send(send, reply)
        finally:
            for then in after:
                then()

    async def _answer(
        self,
        scope: Scope,
        headers: httpx.Headers,
        body: _Body,
        after: list[Callable[[], None]],
    ) -> Reply:
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
        return await self._handle(Incoming(method, _target(scope), headers, length), body, after)

    async def _handle(
        self, incoming: Incoming, body: _Body, after: list[Callable[[], None]]
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
            reply = await self._on(
                self._upstream,
                self._forwarder.forward,
                incoming,
                admitted.target,
                admitted.path_and_query,
                content,
                admitted.grant.invocation_id,
                admitted.ordinal,
            )
        if admitted.counted_here:  # a run of this process: its runner waits for the record
            after.append(self._record_later(admitted, incoming, reply, started))
        else:
            await self._on(self._store, self._record, admitted.grant, incoming, reply, started)
        return reply

    def _admit_live(
        self, incoming: Incoming, started: float, after: list[Callable[[], None]]
    ) -> _Admitted | Reply | None:
        """The checks of ``_admit`` in memory, for a token of a run this process holds;
        None when the store must decide."""
        token = token_from_headers(incoming.headers)
        if token is None:
            return None
        found = self.live.admit(hash_token(token))
        if found is None:
            return None
        held, refusal = found
        grant = _Grant(held.token_sha256, held.invocation_id, held.project_id, held.generation)
        if refusal is not None:
            log.warning("gateway refused %s: %s", incoming.method, TOKEN_REFUSALS[refusal])
            admitted: _Admitted | Reply = self._refused(refusal)
        else:
            admitted = self._check(grant, incoming)
        if isinstance(admitted, Reply):
            after.append(self._record_later(grant, incoming, admitted, started))
        return admitted

    def _record_later(
        self, what: _Admitted | _Grant, incoming: Incoming, reply: Reply, started: float
    ) -> Callable[[], None]:
        """What queues the call's record, to call once the call is answered. The record is
        pending from now: the runner waits for its run's pending records
        (``LiveTokens.settle``) before it records the run's end. Records queued while
        others are written are written together, in one transaction."""
        grant = what.grant if isinstance(what, _Admitted) else what
        counted = what.ordinal if isinstance(what, _Admitted) and what.counted_here else None
        self.live.recording(grant.invocation_id)

        def queue() -> None:
            call = _Unrecorded(grant, incoming, reply, _ms_since(started), counted)
            with self._unrecorded_lock:
                self._unrecorded.append(call)
                if self._writing:
                    return
                self._writing = True
            try:
                assert self._store is not None, "Calls.running() first"
                self._store.submit(self._write_unrecorded)
            except BaseException:
                self._write_unrecorded()  # the threads are gone (stopping): here, then
                raise

        return queue

    def _write_unrecorded(self) -> None:
        """Write the queued records until none is left: one writer at a time, so records
        are stored in the order their calls were answered."""
        while True:
            with self._unrecorded_lock:
                batch, self._unrecorded = self._unrecorded, []
                if not batch:
                    self._writing = False
                    return
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Unrecorded]) -> None:
        lost = []
        try:
            rows = [
                gateway_store.NewCall(
                    call.fields(), call.grant.generation, call.grant.token_sha256, call.counted
                )
                for call in batch
            ]
            with self.db.session() as session:
                kept = gateway_store.add_calls(session, rows)
            lost = [call for call, recorded in zip(batch, kept, strict=True) if not recorded]
        except Exception:
            log.exception("%d gateway calls were not recorded", len(batch))
            lost = []
        finally:
            for call in batch:
                self.live.recorded(call.grant.invocation_id)
        for call in lost:
            _lease_lost(call.grant)
        if self.on_call is not None:
            for call in batch:
                self.on_call(call.reply.status)

    def _admit(self, incoming: Incoming, started: float) -> _Admitted | Reply:
        """In one trip to the store threads: the call may be forwarded, or its refusal
        (recorded on its run when the token names one)."""
        grant, refusal = self._authenticate(incoming.headers)
        if refusal is not None:
            log.warning("gateway refused %s: %s", incoming.method, refusal.error)
        else:
            assert grant is not None
            admitted = self._check(grant, incoming)
            if isinstance(admitted, _Admitted):
                return admitted
            refusal = admitted
        if grant is not None:  # a known run's token: its record shows the refused call
            self._record(grant, incoming, refusal, started)
        return refusal

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
                return None, self._refused(CallRefused.UNKNOWN)
            grant = _Grant(token_sha256, row.invocation_id, row.project_id, row.lease_generation)
            refusal = gateway_store.token_refusal(session, row, datetime.now(UTC))
            return grant, self._refused(refusal) if refusal is not None else None

    def _check(self, grant: _Grant, incoming: Incoming) -> _Admitted | Reply:
        """Path, body size and call count of a live token's call, the count taken if it
        passes."""
        target = self.targets.for_project(grant.project_id)
        try:
            path_and_query = check_path(incoming.target, target.base_path)
        except PathRefused as exc:
            return error_reply(403, "path_forbidden", f"{exc}: refused")
        cap = self.settings.gateway.max_request_bytes
        if incoming.length > cap:
            return error_reply(
                413,
                "request_too_large",
                f"request body of {incoming.length} bytes is over the cap of {cap} bytes",
                close=True,
            )
        counted = self.live.count(grant.token_sha256, self.settings.gateway.max_calls)
        ordinal = counted if counted is not None else self._take_call(grant)
        if isinstance(ordinal, CallRefused):
            return self._refused(ordinal)
        return _Admitted(grant, target, path_and_query, ordinal, counted is not None)

    def _take_call(self, grant: _Grant) -> int | CallRefused:
        """The call's ordinal in its attempt, from the statement that counts it and checks
        the token once more (it may have been revoked or superseded since it was read)."""
        with self.db.session() as session:
            return gateway_store.take_call(
                session, grant.token_sha256, self.settings.gateway.max_calls, datetime.now(UTC)
            )

    def _refused(self, reason: CallRefused) -> Reply:
        if reason is CallRefused.CAP_REACHED:
            return error_reply(
                429,
                reason.value,
                f"this run already made its {self.settings.gateway.max_calls} platform calls",
            )
        return error_reply(401, reason.value, TOKEN_REFUSALS[reason])

    def _record(self, grant: _Grant, incoming: Incoming, reply: Reply, started: float) -> None:
        call = _Unrecorded(grant, incoming, reply, _ms_since(started), None)
        with self.db.session() as session:
            recorded = gateway_store.add_call(session, grant.generation, **call.fields())
        if not recorded:
            _lease_lost(grant)
        if self.on_call is not None:
            self.on_call(reply.status)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _lease_lost(grant: _Grant) -> None:
    log.warning(
        "invocation %s: a call of an attempt that lost its lease is not recorded",
        grant.invocation_id,
    )


def _target(scope: Scope) -> str:
    """The request target as the plugin wrote it (the server splits off the query)."""
    target = scope["raw_path"].decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{target}?{query}" if query else target


def _has_body(headers: httpx.Headers) -> bool:
    return "transfer-encoding" in headers or int(headers.get("content-length") or 0) > 0


async def _drop_body(headers: httpx.Headers, body: _Body) -> Drained:
    """Read and drop a body the gateway refused, so that its sender reads the answer; LEFT
    when that cannot be done: over ``DRAIN_MAX_BYTES``, or not sent until ``100 Continue``."""
    if headers.get("expect", "").lower() == "100-continue":
        return Drained.LEFT
    if "transfer-encoding" in headers:
        return await body.drain(CHUNK_STALL_S)
    if int(headers.get("content-length") or 0) > DRAIN_MAX_BYTES:
        return Drained.LEFT
    return await body.drain()


async def _send(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    if reply.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
